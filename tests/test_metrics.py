"""Acc / Cov / Prec and their stream-clustered intervals."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from taskmem_bench.scoring.metrics import (
    Z_95,
    Scores,
    failure_reason,
    paired_difference,
    score,
    score_by,
    score_rows,
)


def _loop_se(residuals: list[float], clusters: list[str]) -> float:
    """The clustered SE written out the long way, independently of the module."""
    sums: dict[str, float] = {}
    for r, g in zip(residuals, clusters):
        sums[g] = sums.get(g, 0.0) + r
    n_groups = len(sums)
    total = sum(s * s for s in sums.values())
    return math.sqrt(n_groups / (n_groups - 1) * total) / len(residuals)


def test_hand_computed_three_clusters() -> None:
    # cluster a: 1 1, b: 1 0 0, c: 0 -> acc 1/2, cluster residual sums 1, -1/2, -1/2,
    # SE = sqrt(3/2 * 3/2) / 6 = 1/4.
    correct = [1, 1, 1, 0, 0, 0]
    clusters = ["a", "a", "b", "b", "b", "c"]
    s = score(correct, [False] * 6, clusters)
    assert (s.n, s.correct, s.acc, s.cov, s.prec) == (6, 3, 0.5, 1.0, 0.5)
    assert s.acc_ci_low == pytest.approx(0.5 - Z_95 * 0.25)
    assert s.acc_ci_high == pytest.approx(0.5 + Z_95 * 0.25)
    # nothing abstained: Cov has no spread, so its interval is Wilson's on the 3 streams, and
    # Prec equals Acc with the same interval
    assert (s.cov_ci_low, s.cov_ci_high) == pytest.approx((3 / (3 + Z_95**2), 1.0))
    assert (s.prec_ci_low, s.prec_ci_high) == pytest.approx((s.acc_ci_low, s.acc_ci_high))


def test_intervals_match_an_independent_loop() -> None:
    rng = np.random.default_rng(7)
    n = 200
    clusters = [f"s{i}" for i in rng.integers(0, 23, n)]
    abstained = rng.random(n) < 0.3
    correct = ~abstained & (rng.random(n) < 0.7)
    s = score(correct.tolist(), abstained.tolist(), clusters)

    acc = correct.mean()
    cov = 1 - abstained.mean()
    prec = acc / cov
    se_acc = _loop_se([float(c) - acc for c in correct], clusters)
    se_cov = _loop_se([float(not a) - cov for a in abstained], clusters)
    se_prec = _loop_se(
        [(float(c) - prec * float(not a)) / cov for c, a in zip(correct, abstained)], clusters
    )
    assert s.acc_ci_low == pytest.approx(acc - Z_95 * se_acc)
    assert s.acc_ci_high == pytest.approx(acc + Z_95 * se_acc)
    assert s.cov_ci_low == pytest.approx(cov - Z_95 * se_cov)
    assert s.cov_ci_high == pytest.approx(min(1.0, cov + Z_95 * se_cov))
    assert s.prec_ci_low == pytest.approx(prec - Z_95 * se_prec)
    assert s.prec_ci_high == pytest.approx(min(1.0, prec + Z_95 * se_prec))


@pytest.mark.parametrize("seed", range(5))
def test_prec_is_acc_over_cov(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    abstained = rng.random(n) < rng.random()
    correct = ~abstained & (rng.random(n) < rng.random())
    s = score(correct.tolist(), abstained.tolist(), rng.integers(0, 9, n).tolist())
    assert s.cov is not None and s.acc is not None
    if s.cov > 0:
        assert s.prec == pytest.approx(s.acc / s.cov)
        assert s.prec_ci_low is not None and s.prec_ci_high is not None
        assert 0.0 <= s.prec_ci_low <= s.prec <= s.prec_ci_high <= 1.0
    assert s.acc_ci_low is not None and s.acc_ci_high is not None
    assert 0.0 <= s.acc_ci_low <= s.acc <= s.acc_ci_high <= 1.0


def test_clustering_widens_the_interval_for_homogeneous_streams() -> None:
    # every question on a stream gets the same verdict: 10 streams x 10 questions
    correct = [stream % 2 == 0 for stream in range(10) for _ in range(10)]
    clusters = [stream for stream in range(10) for _ in range(10)]
    s = score(correct, [False] * 100, clusters)
    iid_half_width = Z_95 * math.sqrt(0.5 * 0.5 / 100)
    assert s.acc_ci_high is not None and s.acc_ci_low is not None
    clustered_half_width = (s.acc_ci_high - s.acc_ci_low) / 2
    assert clustered_half_width > 2.5 * iid_half_width


def test_parse_failures_are_wrong_and_covered() -> None:
    s = score(
        correct=[True, False, False, False],
        abstained=[False, True, False, False],
        clusters=["a", "a", "b", "c"],
        parse_failed=[False, False, True, True],
    )
    assert (s.correct, s.abstained, s.parse_failures, s.failed) == (1, 1, 2, 0)
    assert (s.acc, s.cov, s.prec) == (0.25, 0.75, pytest.approx(1 / 3))


def test_failed_rows_count_as_wrong_and_not_covered_whatever_their_flags() -> None:
    """A failed question was never answered: with the reader's server down, Cov is 0, not 1."""
    s = score(
        correct=[True, True, False, False],
        abstained=[False, False, True, False],
        clusters=["a", "b", "c", "d"],
        failed=[True, False, True, False],
    )
    assert (s.n, s.correct, s.abstained, s.failed) == (4, 1, 0, 2)
    assert (s.acc, s.cov, s.prec) == (0.25, 0.5, 0.5)
    down = score([False] * 4, [False] * 4, ["a", "a", "b", "b"], failed=[True] * 4)
    assert (down.acc, down.cov, down.prec) == (0.0, 0.0, None)


def test_a_failed_judge_call_is_a_failed_row() -> None:
    rows = _rows().with_columns(  # the last row's answer was not abstained, but not judged
        pl.Series("extraction", [None, None, None, None, None, "judge_error"], pl.String),
        pl.Series("abstained", [False, True, False, False, False, False]),
    )
    s = score_rows(rows)
    assert (s.n, s.failed, s.abstained) == (6, 2, 1)  # the policy_error row and the judge error
    assert s.cov == pytest.approx(3 / 6)
    reasons = rows.select(failure_reason())[:, 0].to_list()
    assert reasons == [None, None, None, None, "policy_error", "judge_error"]


def test_empty_input_gives_none_everywhere() -> None:
    s = score([], [], [])
    assert (s.n, s.correct, s.abstained, s.parse_failures, s.failed) == (0, 0, 0, 0, 0)
    counts = {"n", "correct", "abstained", "parse_failures", "failed"}
    assert all(v is None for k, v in s.to_dict().items() if k not in counts)


def test_one_cluster_has_points_but_no_intervals() -> None:
    s = score([True, False, False], [False, True, False], ["only"] * 3)
    assert (s.acc, s.cov, s.prec) == (pytest.approx(1 / 3), pytest.approx(2 / 3), 0.5)
    assert s.acc_ci_low is s.acc_ci_high is s.cov_ci_low is s.prec_ci_high is None


def test_all_abstained_has_no_precision() -> None:
    s = score([False] * 4, [True] * 4, ["a", "b", "c", "d"])
    assert (s.acc, s.cov, s.prec) == (0.0, 0.0, None)
    assert (s.prec_ci_low, s.prec_ci_high) == (None, None)
    upper = Z_95**2 / (4 + Z_95**2)  # Wilson at p = 0 on 4 streams
    assert (s.acc_ci_low, s.acc_ci_high) == (0.0, pytest.approx(upper))
    assert (s.cov_ci_low, s.cov_ci_high) == (0.0, pytest.approx(upper))


def _wilson_roots(p_hat: float, n: int) -> tuple[float, float]:
    """Wilson bounds as the roots of (p_hat - p)² = z² p (1 - p) / n, solved independently."""
    k = Z_95**2 / n
    a, b, c = 1 + k, -(2 * p_hat + k), p_hat**2
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_all_zero_rows_get_a_wilson_interval_on_the_stream_count() -> None:
    # blind control: 12 streams x 5 questions, every question abstained
    clusters = [g for g in range(12) for _ in range(5)]
    s = score([False] * 60, [True] * 60, clusters)
    assert (s.acc, s.cov) == (0.0, 0.0)
    # p = 0, G = 12: upper = z² / (G + z²) ≈ 0.2425, whatever the questions per stream
    assert Z_95**2 / (12 + Z_95**2) == pytest.approx(0.2425, abs=1e-4)
    for low, high in [(s.acc_ci_low, s.acc_ci_high), (s.cov_ci_low, s.cov_ci_high)]:
        assert low == 0.0
        assert high == pytest.approx(Z_95**2 / (12 + Z_95**2))
        assert (low, high) == pytest.approx(_wilson_roots(0.0, 12))


def test_all_one_rows_get_a_wilson_interval_on_the_stream_count() -> None:
    # an oracle: 12 streams, every question answered and correct
    clusters = [g for g in range(12) for _ in range(3)]
    s = score([True] * 36, [False] * 36, clusters)
    assert (s.acc, s.cov, s.prec) == (1.0, 1.0, 1.0)
    lower = 12 / (12 + Z_95**2)
    assert lower == pytest.approx(0.7575, abs=1e-4)
    for low, high in [
        (s.acc_ci_low, s.acc_ci_high),
        (s.cov_ci_low, s.cov_ci_high),
        (s.prec_ci_low, s.prec_ci_high),
    ]:
        assert (low, high) == (pytest.approx(lower), 1.0)
        assert (low, high) == pytest.approx(_wilson_roots(1.0, 12))


def test_perfect_precision_uses_the_streams_of_its_denominator() -> None:
    # 10 streams; the reader abstains on everything in streams 0-3 and answers 6 streams
    # perfectly, so Prec = 1 with a clustered SE of 0 over 6 covered streams, while Acc and
    # Cov vary and keep their clustered normal intervals
    clusters = [g for g in range(10) for _ in range(4)]
    abstained = [g < 4 for g in clusters]
    correct = [not a for a in abstained]
    s = score(correct, abstained, clusters)
    assert (s.acc, s.cov, s.prec) == (0.6, 0.6, 1.0)
    assert (s.prec_ci_low, s.prec_ci_high) == (pytest.approx(6 / (6 + Z_95**2)), 1.0)
    se = _loop_se([float(c) - 0.6 for c in correct], [str(g) for g in clusters])
    assert se > 0
    assert (s.acc_ci_low, s.acc_ci_high) == pytest.approx((0.6 - Z_95 * se, 0.6 + Z_95 * se))
    assert (s.cov_ci_low, s.cov_ci_high) == pytest.approx((0.6 - Z_95 * se, 0.6 + Z_95 * se))


def test_zero_precision_is_not_certain_either() -> None:
    # every answered question wrong, spread over 5 streams, some abstentions
    s = score([False] * 10, [i % 2 == 0 for i in range(10)], [i // 2 for i in range(10)])
    assert (s.acc, s.prec) == (0.0, 0.0)
    assert (s.prec_ci_low, s.prec_ci_high) == (0.0, pytest.approx(Z_95**2 / (5 + Z_95**2)))
    assert (s.acc_ci_low, s.acc_ci_high) == (0.0, pytest.approx(Z_95**2 / (5 + Z_95**2)))
    # Cov = 1/2 in every stream: the clustered SE is 0 here too, and Wilson takes over
    assert (s.cov_ci_low, s.cov_ci_high) == pytest.approx(_wilson_roots(0.5, 5))
    assert s.cov_ci_low is not None and s.cov_ci_low < 0.5 - 0.25


def test_non_degenerate_intervals_are_still_the_clustered_normal_ones() -> None:
    # one stream differs: the SE is tiny but not 0, so no Wilson fallback
    clusters = [g for g in range(20) for _ in range(5)]
    correct = [True] * 99 + [False]
    s = score(correct, [False] * 100, clusters)
    se = _loop_se([float(c) - 0.99 for c in correct], [str(g) for g in clusters])
    assert (s.acc_ci_low, s.acc_ci_high) == pytest.approx((0.99 - Z_95 * se, 1.0))


def test_intervals_are_clipped_to_the_unit_interval() -> None:
    s = score([True, True, True, False], [False] * 4, ["a", "b", "c", "d"])
    assert s.acc_ci_high == 1.0
    assert s.acc_ci_low is not None and s.acc_ci_low < 0.75


@pytest.mark.parametrize(
    ("correct", "abstained", "parse_failed"),
    [([True], [True], [False]), ([True], [False], [True]), ([False], [True], [True])],
)
def test_contradictory_rows_are_rejected(
    correct: list[bool], abstained: list[bool], parse_failed: list[bool]
) -> None:
    with pytest.raises(ValueError):
        score(correct, abstained, ["a"], parse_failed=parse_failed)


def test_unequal_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        score([True, False], [False], ["a", "b"])
    with pytest.raises(ValueError):
        score([True, False], [False, False], ["a"])


def _rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "stream_id": ["v1", "v1", "v2", "v2", "v3", "v3"],
            "category": ["count", "ocr", "count", "ocr", "count", "ocr"],
            "correct": [True, False, True, False, False, False],
            "abstained": [False, True, False, False, False, True],
            "parse_failed": [False, False, False, True, False, False],
            "failure": [None, None, None, None, "policy_error", None],
            "extraction": ["answer_line", "abstained", "answer_line", "no_choice", None,
                           "abstained"],
        },
        schema_overrides={"failure": pl.String, "extraction": pl.String},
    )


def test_score_by_category_matches_scoring_each_part() -> None:
    by = score_by(_rows(), "category")
    assert list(by) == ["count", "ocr"]
    expected = score(
        [True, True, False], [False] * 3, ["v1", "v2", "v3"], failed=[False, False, True]
    )
    assert by["count"] == expected
    ocr = by["ocr"]
    assert (ocr.n, ocr.correct, ocr.abstained, ocr.parse_failures, ocr.failed) == (3, 0, 2, 1, 0)
    assert (ocr.acc, ocr.cov, ocr.prec) == (0.0, pytest.approx(1 / 3), 0.0)


def test_score_rows_and_to_dict() -> None:
    s = score_rows(_rows())
    assert isinstance(s, Scores)
    d = s.to_dict()
    counts = (d["n"], d["correct"], d["abstained"], d["parse_failures"], d["failed"])
    assert counts == (6, 2, 2, 1, 1)
    assert d["prec"] == pytest.approx(d["acc"] / d["cov"])


def test_null_verdicts_are_rejected() -> None:
    rows = _rows().with_columns(pl.lit(None, dtype=pl.Boolean).alias("correct"))
    with pytest.raises(ValueError):
        score_rows(rows)


def test_a_paired_difference_is_clustered_by_stream() -> None:
    # per-question differences a: +1 0, b: 0 -1 +1, c: -1 -> mean 0, residual sums +1, 0, -1,
    # SE = sqrt(3/2 * 2) / 6; not clipped at 0 (a difference lies in [-1, 1])
    treated = [1, 1, 0, 0, 1, 0]
    control = [0, 1, 0, 1, 0, 1]
    d = paired_difference(treated, control, ["a", "a", "b", "b", "b", "c"])
    assert (d.n, d.streams, d.mean) == (6, 3, 0.0)
    assert (d.ci_low, d.ci_high) == pytest.approx((-Z_95 * math.sqrt(3) / 6, Z_95 * math.sqrt(3) / 6))
    assert _loop_se([1, 0, 0, -1, 1, -1], ["a", "a", "b", "b", "b", "c"]) == pytest.approx(
        math.sqrt(3) / 6)
    one = paired_difference([1, 0], [0, 0], ["a", "a"])
    assert one.mean == 0.5 and one.ci_low is None  # one stream: no interval
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1], [1, 0], ["a"])
