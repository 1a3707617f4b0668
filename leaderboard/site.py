"""Build the static leaderboard site from a folder of result bundles.

Layout of the site (all links relative, so it works from any path and from ``file://``)::

    index.html                 main table: one row per policy configuration, columns per benchmark
    benchmarks/<task>.html     per-benchmark table, category / evidence-delay breakdowns, plots
    runs/<run_id>/index.html   provenance, scores, a sample of questions with their memory
    runs/<run_id>/rows.csv     every row (text cells guarded against spreadsheet formulas)
    runs/<run_id>/rows.parquet every row, exact but for local paths in tracebacks (``error``)
    about.html                 how to submit, what is checked, rejected bundles, citation
    leaderboard.json           the accepted runs' numbers and the rejections, for machines
    static/                    style.css, leaderboard.js

The site is written to a staging folder beside it and swapped in by renames: the old site is
renamed aside, the new one renamed into place, and only then is the old one deleted. A reader
never sees a mix of two builds, a run whose bundle was removed leaves no page behind, and a
build killed at any point leaves either site whole (with its marker), never a half-deleted
one; what it leaves beside it (``.<site>.*``) the next build removes, after putting the old site
back in place if the build was killed between its two renames.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined

import taskmem_bench
from leaderboard import plots, tables
from leaderboard.accepted import AcceptedRun, Rejection
from leaderboard.bundle import BUNDLE_SCHEMA, BundleError, read_bundle
from leaderboard.display import published_rows, redact_paths
from leaderboard.figures import PUBLISHED, dataset_figures
from leaderboard.labels import RunNames
from leaderboard.tracks import TRACKS
from leaderboard.validate import validate_all
from taskmem_bench.taskconfig import load_task
from taskmem_bench.untrusted import printable_name

MARKER = ".taskmem-leaderboard"
"""Marks a folder as a built site, which the next build may replace."""
FORMULA_START = r"^[=+\-@\t\r]"
"""Cell starts a spreadsheet treats as a formula."""
PAPER = {
    "title": "Task-Focused Memorization for Multimodal Agents",
    "authors": ("Zou", "He", "Qiu", "Lin", "Li"),
    "arxiv": "2605.31075",
    "year": 2026,
}
"""The paper the benchmark's protocol comes from, for the citation."""


class SiteError(ValueError):
    """The site cannot be built where asked; the message says why."""


@dataclass(frozen=True)
class BuildResult:
    site: Path
    accepted: list[AcceptedRun]
    rejected: list[Rejection]


def collect(results: Path) -> tuple[list[AcceptedRun], list[Rejection]]:
    """Read and validate every ``*.tar.gz`` under ``results``, in path order."""
    results = Path(results)
    if not results.is_dir():
        raise SiteError(f"results folder not found: {results}")
    paths = sorted(results.rglob("*.tar.gz"))
    if not paths:
        raise SiteError(f"no result bundles (*.tar.gz) under {results}")
    bundles, rejected = [], []
    for path in paths:
        try:
            bundles.append(read_bundle(path))
        except BundleError as exc:
            rejected.append(Rejection(printable_name(path.name), str(exc)))
    accepted, more = validate_all(bundles)
    return accepted, sorted(rejected + more, key=lambda r: r.source)


def build_site(results: Path, out: Path) -> BuildResult:
    out = Path(out)
    _check_replaceable(out)
    accepted, rejected = collect(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(out)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        os.chmod(staging, 0o755)  # a site to serve, not mkdtemp's private 0700
        _Writer(staging, accepted, rejected).write_all()
        old = _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old)
    return BuildResult(out, accepted, rejected)


def _leftovers(out: Path) -> list[Path]:
    """Staging folders and old sites of ``out`` that a killed build left beside it: named as
    ``build_site`` names them (``.<name>.`` and ``mkdtemp``'s 8 characters, ``.old`` for an old
    site), real folders, not links."""
    pattern = re.compile(re.escape(f".{out.name}.") + r"[a-z0-9_]{8}(\.old)?")
    return sorted(p for p in out.parent.iterdir()
                  if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def _clear_leftovers(out: Path) -> None:
    """Delete what a killed build left beside ``out``. A build killed between its two renames
    left no ``out`` and the old site, whole, in its ``.old`` folder: that one is renamed back to
    ``out`` first, so the site stays up even if this build fails too."""
    leftovers = _leftovers(out)
    if not out.exists():
        whole = [p for p in leftovers if p.name.endswith(".old") and (p / MARKER).is_file()]
        if whole:
            latest = max(whole, key=lambda p: p.stat().st_mtime)
            os.rename(latest, out)
            leftovers.remove(latest)
    for leftover in leftovers:
        shutil.rmtree(leftover)


def _swap_in(staging: Path, out: Path) -> Path | None:
    """Rename ``staging`` to ``out``, the old site first renamed aside; returns where the old
    site now is, for the caller to delete (None if there was none)."""
    if not out.exists():
        os.rename(staging, out)
        return None
    old = staging.with_name(staging.name + ".old")
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    return old


def _check_replaceable(out: Path) -> None:
    """Before any work: the output must be absent, an empty folder or a site built here before;
    never a link (the swap would replace the link, not what it points to)."""
    if out.is_symlink():
        raise SiteError(f"{out} is a symbolic link; give the real folder as -o")
    if out.exists() and not (out.is_dir() and ((out / MARKER).exists() or not any(out.iterdir()))):
        raise SiteError(f"{out} exists and is not a leaderboard site; choose another -o")


def project_url() -> str | None:
    """Where this leaderboard's project lives: the repository a GitHub Actions build runs in,
    else the package's ``Project-URL`` (``[project.urls]``), else unknown."""
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if server and repository:
        return f"{server}/{repository}"
    try:
        urls = metadata("taskmem-bench").get_all("Project-URL") or []
    except PackageNotFoundError:  # run from a source tree that was never installed
        return None
    return next((url.split(",", 1)[1].strip() for url in urls if "," in url), None)


def build_time() -> datetime:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)


def guard_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells a spreadsheet would run as a formula get a leading apostrophe (CSV only)."""
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


class _Writer:
    """Renders every page of one build into ``root``."""

    def __init__(self, root: Path, accepted: list[AcceptedRun], rejected: list[Rejection]) -> None:
        self.root, self.accepted, self.rejected = root, accepted, rejected
        self.env = Environment(
            loader=PackageLoader("leaderboard", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.benchmarks = sorted({run.task for run in accepted})
        self.names = RunNames.of(accepted)
        self.gains = dict(
            tables.runs_frame(accepted).select("run_id", "gain").iter_rows()
        ) if accepted else {}
        when = build_time()
        self.common = {
            "benchmarks": self.benchmarks,
            "version": taskmem_bench.__version__,
            "updated": when.strftime("%Y-%m-%d %H:%M UTC"),
            "year": when.year,
            "n_accepted": len(accepted),
            "project_url": project_url(),
            "paper": PAPER,
            "names": self.names,
        }

    def write_all(self) -> None:
        (self.root / MARKER).write_text("built by taskmem-bench leaderboard build\n")
        static = self.root / "static"
        static.mkdir()
        for item in files("leaderboard").joinpath("static").iterdir():
            (static / item.name).write_bytes(item.read_bytes())
        self._page("index.html", "index.html.j2", root="",
                   entries=tables.entries(self.accepted, self.names), groups=tables.GROUPS,
                   tracks=TRACKS, side_options=sorted({r.side_label for r in self.accepted}),
                   n_rejected=len(self.rejected))
        for task in self.benchmarks:
            self._benchmark(task)
        for run in self.accepted:
            self._run(run)
        self._page("about.html", "about.html.j2", root="", rejected=self.rejected,
                   bundle_schema=BUNDLE_SCHEMA)
        (self.root / "leaderboard.json").write_text(json.dumps(self._json(), indent=2))

    def _page(self, path: str, template: str, **context: Any) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        html = self.env.get_template(template).render(**self.common, **context)
        target.write_text(html, encoding="utf-8")

    def _benchmark(self, task: str) -> None:
        runs = sorted((r for r in self.accepted if r.task == task), key=tables.board_order)
        breakdowns = tables.breakdowns(runs)
        delay = next(b for b in breakdowns if b.title == "Evidence delay")
        href = "../runs/{}/index.html".format
        memory_plot = plots.accuracy_vs_memory([
            plots.Point(self.names.label(r), r.tokens_per_hour or 0.0, r.scores.acc or 0.0,
                        r.scores.acc_ci_low, r.scores.acc_ci_high, r.track, href(r.run_id))
            for r in runs
        ])
        delay_plot = plots.accuracy_by_group(
            delay.groups,
            [
                plots.Series(self.names.label(run),
                             [s.acc if (s := scores.get(g)) else None for g in delay.groups],
                             href(run.run_id))
                for run, scores in delay.runs
            ],
            "Evidence delay",
        )
        shipped = load_task(task)
        self._page(
            f"benchmarks/{task}.html", "benchmark.html.j2", root="../", task=task,
            description=shipped.description,
            figures=dataset_figures(shipped.scoring, runs), published=PUBLISHED.get(task),
            runs=[{"run": r, "gain": self.gains.get(r.run_id), "group": tables.group_of(r),
                   "models": tables.models(r)} for r in runs],
            groups=tables.GROUPS,
            breakdowns=breakdowns, memory_plot=memory_plot, delay_plot=delay_plot,
        )

    def _run(self, run: AcceptedRun) -> None:
        folder = self.root / "runs" / run.run_id
        folder.mkdir(parents=True)
        rows = published_rows(run.bundle.rows)
        rows.write_parquet(folder / "rows.parquet")
        guard_formulas(rows).write_csv(folder / "rows.csv")
        exported = run.bundle.header.get("exported_by")
        self._page(
            f"runs/{run.run_id}/index.html", "run.html.j2", root="../../", run=run,
            gain=self.gains.get(run.run_id), models=tables.models(run),
            samples=tables.sample(run), manifest=redact_paths(dict(run.bundle.manifest)),
            header_package=(f"{exported.get('name')} {exported.get('version')}"
                            if isinstance(exported, dict) else "?"),
        )

    def _json(self) -> dict[str, Any]:
        return {
            "built_by": {"name": "taskmem-bench", "version": taskmem_bench.__version__},
            "updated": self.common["updated"],
            "runs": [
                {
                    "run_id": r.run_id, "bundle": r.bundle.source, "task": r.task,
                    "policy": r.policy, "policy_version": r.manifest.policy.version,
                    "track": r.track, "reader": r.manifest.reader.name,
                    "models": tables.models(r), "side_channels": list(r.side_channels),
                    "seed": r.manifest.seed, "limit": r.coverage.limit,
                    "streams": r.coverage.streams, "gain": self.gains.get(r.run_id),
                    "excluded_for_missing_media": r.coverage.excluded,
                    "tokens_per_hour": r.tokens_per_hour, **r.scores.to_dict(),
                }
                for r in self.accepted
            ],
            "rejected": [{"bundle": r.source, "reason": r.reason} for r in self.rejected],
        }
