"""Paper-compatible Acc / Cov / Prec with 95 % confidence intervals clustered by stream.

* **Acc** = correct / all questions, **Cov** = answered and not abstained / all, **Prec** =
  Acc / Cov (the identity the paper's table satisfies in every row).
* A parse failure (the reply names no letter) is *not correct and not abstained*: it lowers
  Acc and Prec, never Cov, so a reader cannot gain precision by rambling. Parse failures are
  counted separately so their rate can be reported.
* A failed row (``failed``: a policy, media or reader error, a failed stream, or a failed
  LLM-judge call) was never answered: it counts as wrong and not covered whatever its other
  flags say, and stays in ``n``. Dropping it would reward a policy for crashing on hard
  streams; counting it as covered would show Cov 100 for a run whose server was down.

Questions on one video share its memory, so their verdicts are correlated; an i.i.d. interval
would be too narrow. Intervals use the cluster-robust standard error of a mean with the small-
sample factor G/(G-1),

    SE = sqrt(G/(G-1) · Σ_g (Σ_{i∈g} r_i)²) / n,   r_i = y_i − ȳ,

and for Prec (a ratio of two means) the linearised residual r_i = (correct_i − Prec·covered_i)
/ Cov. Intervals are point ± 1.96·SE, clipped to [0, 1].

A clustered SE of 0 does not mean certainty: it happens when every row has the same value
(a blind control's Cov = 0, an oracle's Prec = 1) or, rarely, every stream's mean equals the
overall mean, and a normal interval would collapse to [p, p]. Then the interval is the 95 %
Wilson score interval for p with the number of clusters G as the sample size,

    (p + z²/2G ± z·sqrt(p(1−p)/G + z²/4G²)) / (1 + z²/G),

i.e. each stream counts as one observation, which is conservative when a stream's questions
are perfectly correlated (p = 0 with G = 12 gives [0, z²/(G + z²)] ≈ [0, 0.2425]). For Prec,
G counts only the streams with at least one covered (answered, not abstained) question: the clusters of
its denominator. Non-degenerate data keep the clustered normal interval.

Degenerate cases are ``None`` rather than invented numbers: with n = 0 every rate is ``None``;
with Cov = 0, Prec is ``None``; with fewer than two clusters the standard error is undefined and
all intervals are ``None``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import polars as pl

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Scores:
    """Counts, rates and clustered 95 % intervals for one set of questions.

    Each interval is point ± 1.96 · (cluster-robust SE), clipped to [0, 1]; where that SE is 0
    (every row has the same value, e.g. Cov = 0 or Prec = 1) it is instead the Wilson score
    interval with the number of streams as the sample size (for Prec: the streams with a
    covered question), so a perfect or null score never gets a zero-width interval. Intervals
    are ``None`` with fewer than two streams, and so is everything for Prec when Cov = 0.
    """

    n: int
    correct: int
    abstained: int
    parse_failures: int
    failed: int
    acc: float | None
    cov: float | None
    prec: float | None
    acc_ci_low: float | None
    acc_ci_high: float | None
    cov_ci_low: float | None
    cov_ci_high: float | None
    prec_ci_low: float | None
    prec_ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Scores:
        """The scores :meth:`to_dict` gave, read back from ``values`` (e.g. a summary, which
        holds them beside its other keys)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})


def score(
    correct: Sequence[bool],
    abstained: Sequence[bool],
    clusters: Sequence[Hashable],
    parse_failed: Sequence[bool] | None = None,
    failed: Sequence[bool] | None = None,
) -> Scores:
    """Score per-question verdicts; ``clusters`` holds each question's stream id.

    Raises ``ValueError`` on unequal lengths or contradictory rows (correct and abstained, or a
    parse failure that is also correct or abstained): those are upstream bugs, not verdicts.
    """
    n = len(correct)
    c = np.asarray(correct, dtype=bool)
    a = np.asarray(abstained, dtype=bool)
    p = np.zeros(n, bool) if parse_failed is None else np.asarray(parse_failed, dtype=bool)
    f = np.zeros(n, bool) if failed is None else np.asarray(failed, dtype=bool)
    if not (a.shape == p.shape == f.shape == (n,) and len(clusters) == n):
        raise ValueError("correct, abstained, clusters, parse_failed and failed differ in length")
    if np.any(c & a) or np.any(p & (c | a)):
        raise ValueError("a row is both correct and abstained, or a parse failure with a verdict")
    c, a = c & ~f, a & ~f
    covered = ~a & ~f

    if n == 0:
        return Scores(0, 0, 0, 0, 0, None, None, None, None, None, None, None, None, None)
    ids: dict[Hashable, int] = {}
    groups = np.fromiter((ids.setdefault(g, len(ids)) for g in clusters), dtype=np.intp, count=n)

    acc, cov = float(c.mean()), float(covered.mean())
    n_groups = len(ids)
    acc_ci = _interval(acc, c - acc, groups, n_groups)
    cov_ci = _interval(cov, covered - cov, groups, n_groups)
    if cov > 0:
        prec = acc / cov
        covered_groups = int(np.unique(groups[covered]).size)
        prec_ci = _interval(prec, (c - prec * covered) / cov, groups, covered_groups)
    else:
        prec, prec_ci = None, (None, None)
    return Scores(
        n=n,
        correct=int(c.sum()),
        abstained=int(a.sum()),
        parse_failures=int(p.sum()),
        failed=int(f.sum()),
        acc=acc,
        cov=cov,
        prec=prec,
        acc_ci_low=acc_ci[0],
        acc_ci_high=acc_ci[1],
        cov_ci_low=cov_ci[0],
        cov_ci_high=cov_ci[1],
        prec_ci_low=prec_ci[0],
        prec_ci_high=prec_ci[1],
    )


def _cluster_se(residuals: np.ndarray, groups: np.ndarray) -> float | None:
    """Cluster-robust standard error of a mean from its residuals; ``None`` below two clusters.

    ``groups`` are integer cluster indices 0..G-1, one per residual.
    """
    n_groups = int(groups.max()) + 1 if groups.size else 0
    if n_groups < 2:
        return None
    sums = np.bincount(groups, weights=residuals, minlength=n_groups)
    return float(np.sqrt(n_groups / (n_groups - 1) * np.sum(sums**2)) / residuals.size)


def _interval(
    point: float, residuals: np.ndarray, groups: np.ndarray, wilson_n: int
) -> tuple[float | None, float | None]:
    """Clustered normal interval, or the Wilson interval on ``wilson_n`` clusters where the
    clustered SE is 0; ``None`` below two clusters."""
    se = _cluster_se(residuals.astype(float), groups)
    if se is None:
        return None, None
    # Every stream's residual sum is an integer multiple of at least 1/n, so a non-zero SE is
    # >= 1/n²; below half that it is 0 up to rounding (identical values give exactly 0; streams
    # whose means all equal the overall mean give ~1e-17).
    if se < 0.5 / residuals.size**2:
        return _wilson(point, wilson_n)
    return max(0.0, point - Z_95 * se), min(1.0, point + Z_95 * se)


def _wilson(p: float, n: int) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion ``p`` observed on ``n`` (>= 1) units."""
    z2 = Z_95 * Z_95
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = Z_95 * float(np.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))) / denom
    # Clamp rounding so that p itself is always inside (p = 0 gives exactly 0, not 1e-17).
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


JUDGE_ERROR = "judge_error"
"""The ``extraction`` of an open answer whose LLM-judge call failed: it has no verdict."""


def failure_reason() -> pl.Expr:
    """Why a result row has no verdict: its ``failure`` (a policy, media or reader error, or its
    stream failed), else ``judge_error`` where the judge call failed; null for rows with one.
    The one definition of a failed row for scores, failure counts and failure reports."""
    judge_failed = pl.when(pl.col("extraction") == JUDGE_ERROR).then(pl.lit(JUDGE_ERROR))
    return pl.coalesce(pl.col("failure"), judge_failed)


def score_rows(rows: pl.DataFrame) -> Scores:
    """Score a result table with boolean ``correct``, ``abstained``, ``parse_failed``, string
    ``stream_id`` (the cluster), nullable strings ``failure`` and ``extraction`` (a failed row:
    see :func:`failure_reason`)."""
    flags = rows.select("correct", "abstained", "parse_failed")
    if flags.null_count().sum_horizontal().item():
        raise ValueError("correct / abstained / parse_failed must not be null")
    return score(
        correct=rows["correct"].to_list(),
        abstained=rows["abstained"].to_list(),
        clusters=rows["stream_id"].to_list(),
        parse_failed=rows["parse_failed"].to_list(),
        failed=rows.select(failure_reason().is_not_null())[:, 0].to_list(),
    )


def score_by(rows: pl.DataFrame, by: str) -> dict[str, Scores]:
    """Per-group scores (category, duration bucket, ...), keyed by ``str`` of the group value
    (a null group is keyed ``"None"``), in sorted key order. Clusters stay streams within each
    group, so a category's interval reflects how many videos it spans."""
    groups = {str(key[0]): part for key, part in rows.partition_by(by, as_dict=True).items()}
    return {key: score_rows(groups[key]) for key in sorted(groups)}


@dataclass(frozen=True)
class PairedDifference:
    """The mean of per-question differences between two runs on the same questions, with its
    95 % interval clustered by stream (unclipped: a difference lies in [-1, 1]); the interval is
    ``None`` below two streams."""

    n: int
    streams: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    changed: int = 0
    """Questions whose verdict differs: with none, the interval is [0, 0] because nothing
    varies, not because the difference is known to be 0."""


def paired_difference(
    treated: Sequence[bool], control: Sequence[bool], clusters: Sequence[Hashable]
) -> PairedDifference:
    """Treated minus control accuracy on the same questions (``treated[i]`` and ``control[i]``
    are verdicts on question i, ``clusters[i]`` its stream): pairing removes the questions'
    own difficulty from the interval, and clustering keeps a stream's shared memory from
    narrowing it."""
    if not len(treated) == len(control) == len(clusters):
        raise ValueError("treated, control and clusters differ in length")
    d = np.asarray(treated, dtype=float) - np.asarray(control, dtype=float)
    if d.size == 0:
        return PairedDifference(0, 0, None, None, None)
    ids: dict[Hashable, int] = {}
    groups = np.fromiter((ids.setdefault(g, len(ids)) for g in clusters), dtype=np.intp,
                         count=d.size)
    mean = float(d.mean())
    se = _cluster_se(d - mean, groups)
    low, high = (None, None) if se is None else (mean - Z_95 * se, mean + Z_95 * se)
    return PairedDifference(int(d.size), len(ids), mean, low, high, int(np.count_nonzero(d)))
