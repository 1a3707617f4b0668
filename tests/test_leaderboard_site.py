"""The built site: its pages and files, escaping, the CLI, the committed results and CI."""

from __future__ import annotations

import dataclasses
import json
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
import yaml

from leaderboard import tables
from leaderboard.accepted import AcceptedRun
from leaderboard.bundle import read_bundle
from leaderboard.labels import SETTINGS_CHARS, RunNames
from leaderboard.site import MARKER, BuildResult, SiteError, build_site, guard_formulas
from leaderboard.validate import validate_bundle
from leaderboard_support import HOSTILE, make_results
from taskmem_bench.cli import main

REPO = Path(__file__).parent.parent


class _Tags(HTMLParser):
    """Collects element names and script sources of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.scripts: list[str | None] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def _parse(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_site_has_every_page_and_download(leaderboard_site: BuildResult) -> None:
    site = leaderboard_site.site
    ids = {run.run_id for run in leaderboard_site.accepted}
    assert len(ids) == 8  # five real runs, two committed full runs and the hostile one
    for page in ("index.html", "about.html", "benchmarks/mini.html", "leaderboard.json",
                 "static/style.css", "static/leaderboard.js", MARKER):
        assert (site / page).is_file(), page
    assert {p.name for p in (site / "runs").iterdir()} == ids
    index = (site / "index.html").read_text()
    for run in leaderboard_site.accepted:
        folder = site / "runs" / run.run_id
        assert f'href="runs/{run.run_id}/index.html"' in index
        assert pl.read_parquet(folder / "rows.parquet").equals(run.bundle.rows)
        assert pl.read_csv(folder / "rows.csv").height == run.bundle.rows.height
    data = json.loads((site / "leaderboard.json").read_text())
    assert {r["run_id"] for r in data["runs"]} == ids
    assert data["rejected"] == [{"bundle": "tampered.tar.gz", "reason": leaderboard_site.rejected[0].reason}]


def test_pages_show_provenance_breakdowns_plots_and_samples(leaderboard_site: BuildResult) -> None:
    site = leaderboard_site.site
    bench = (site / "benchmarks" / "mini.html").read_text()
    for heading in ("Accuracy vs memory size", "Accuracy by evidence delay", "By category", "By evidence delay"):
        assert heading in bench
    assert bench.count("<svg") == 2 and "http://" not in bench.replace('xmlns="http://www.w3.org/2000/svg"', "")
    oracle = next(r for r in leaderboard_site.accepted if r.policy == "oracle")
    page = (site / "runs" / oracle.run_id / "index.html").read_text()
    assert oracle.manifest.dataset.revision in page and oracle.bundle.digest in page
    assert "Memory the reader saw" in page and 'href="rows.csv"' in page and 'href="rows.parquet"' in page
    assert "Last updated" in page and "built by taskmem-bench" in page
    about = (site / "about.html").read_text()
    assert "tampered.tar.gz" in about and "summary.json states acc" in about and "@software" in about


def test_no_page_lets_bundle_text_become_markup(leaderboard_site: BuildResult) -> None:
    site = leaderboard_site.site
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 8
    for page in pages:
        parsed = _parse(page)
        assert parsed.scripts == [parsed.scripts[0]] and parsed.scripts[0].endswith("static/leaderboard.js"), page
        assert "img" not in parsed.tags and parsed.handlers == [], page
    hostile = next(r for r in leaderboard_site.accepted if r.policy == HOSTILE)
    escaped = "&lt;script&gt;window.__xss = 1&lt;/script&gt;"
    assert escaped in (site / "index.html").read_text()
    assert escaped in (site / "runs" / hostile.run_id / "index.html").read_text()


def test_csv_downloads_guard_spreadsheet_formulas() -> None:
    frame = pl.DataFrame({"text": ["=1+1", "+A1", "-2", "@SUM(A1)", "plain", None], "n": [1, 2, 3, 4, 5, 6]})
    guarded = guard_formulas(frame)
    assert guarded["text"].to_list() == ["'=1+1", "'+A1", "'-2", "'@SUM(A1)", "plain", None]
    assert guarded["n"].equals(frame["n"])


def test_cli_build_reports_each_rejection_and_exits_1(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = make_results(tmp_path / "results", leaderboard_bundles)
    site = tmp_path / "site"
    assert main(["leaderboard", "build", str(results), "-o", str(site)]) == 1
    captured = capsys.readouterr()
    rejected = [line for line in captured.err.splitlines() if line.startswith("rejected")]
    assert len(rejected) == 1
    assert rejected[0].startswith("rejected tampered.tar.gz: summary.json states acc = ")
    assert "8 runs accepted, 1 rejected" in captured.out

    hostile_page = next((site / "runs").glob("mini-script-*"))
    (results / "tampered.tar.gz").unlink()
    (results / "hostile.tar.gz").unlink()
    assert main(["leaderboard", "build", str(results), "-o", str(site)]) == 0
    assert len(list((site / "runs").iterdir())) == 7
    assert not hostile_page.exists()  # a removed bundle leaves no page behind


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("missing", "results folder not found"),
        ("empty", "no result bundles (*.tar.gz) under"),
        ("foreign-out", "exists and is not a leaderboard site; choose another -o"),
    ],
)
def test_cli_build_errors_are_one_line_exit_2(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    setup: str, needle: str,
) -> None:
    results, out = tmp_path / "results", tmp_path / "out"
    if setup != "missing":
        results.mkdir()
    if setup == "foreign-out":
        (results / "b.tar.gz").write_bytes(leaderboard_bundles["blind"].read_bytes())
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    assert main(["leaderboard", "build", str(results), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in " ".join(err.split()) and len(err.strip().splitlines()) <= 3
    if setup == "foreign-out":
        assert (out / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def committed_site(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The site built from the committed ``results/``."""
    return build_site(REPO / "results", tmp_path_factory.mktemp("committed") / "site")


def test_committed_results_are_all_accepted(committed_site: BuildResult) -> None:
    accepted, rejected = committed_site.accepted, committed_site.rejected
    assert rejected == []
    policies = {run.policy for run in accepted}
    assert {"blind", "oracle"} < policies and len(policies) >= 3
    assert {run.task for run in accepted} == {  # the examples and `make reproduce`'s runs
        "mini", "mini_count_ocr_large", "mini_action_time_large", "mini_mixed_large"}
    assert all(run.coverage.full for run in accepted)  # full runs, not test-sized


def test_runs_of_one_policy_are_named_by_the_config_settings_that_set_them_apart(
    committed_site: BuildResult,
) -> None:
    """Phase One and TaskMem are both policy ``taskmem``, with ``adapt`` off and both: every
    place that names them says which; a policy whose runs share one config keeps its name."""
    site, task = committed_site.site, "mini_count_ocr_large"
    runs = {r.bundle.source: r for r in committed_site.accepted if r.task == task}
    names = RunNames.of(committed_site.accepted)
    index = (site / "index.html").read_text()
    bench = (site / "benchmarks" / f"{task}.html").read_text()
    for source, name in (("mini-count-ocr-large-phase-one.tar.gz", "taskmem · adapt=off"),
                         ("mini-count-ocr-large-taskmem.tar.gz", "taskmem · adapt=both"),
                         ("mini-count-ocr-large-blind.tar.gz", "blind"),
                         ("mini-count-ocr-large-oracle.tar.gz", "oracle")):
        run = runs[source]
        assert names.name(run) == name
        link = f'<a href="../runs/{run.run_id}/index.html">'
        assert f"{link}{name}</a>" in bench  # the benchmark's table
        assert f"{link}{names.label(run)}</a>" in bench  # its breakdowns
        assert f"<title>{names.label(run)}</title>" in bench  # the evidence-delay plot's line
        page = (site / "runs" / run.run_id / "index.html").read_text()
        assert f'<h1><span class="policy">{name}</span> on' in page
        assert f'<td data-value="{name}" class="policy">' in index
    assert names.label(runs["mini-count-ocr-large-blind.tar.gz"]) == "blind"
    assert names.label(runs["mini-count-ocr-large-oracle.tar.gz"]) == "oracle"


def test_run_names_show_differing_settings_sorted_compact_escaped_and_capped(
    committed_site: BuildResult,
) -> None:
    blind = next(r for r in committed_site.accepted if r.policy == "blind")

    def run(policy: str, config: dict, n: int) -> AcceptedRun:
        info = blind.manifest.policy.model_copy(update={"name": policy, "config": config})
        return dataclasses.replace(
            blind, manifest=blind.manifest.model_copy(update={"policy": info}),
            bundle=dataclasses.replace(blind.bundle, digest=f"{n:010x}" + blind.bundle.digest[10:]))

    same = {"order": "time", "tags": ["a", "b"]}
    a = run("p", {**same, "steps": 1, "adapt": "off"}, 1)
    b = run("p", {**same, "steps": True, "adapt": "both", "added": None}, 2)
    c = run("p", {**same, "steps": 1.0, "adapt": "é\n" + "x" * 100}, 3)
    wide = [run("q", {f"key{k}": n for k in range(12)}, 10 + n) for n in range(2)]
    alike = [run("r", same, 20 + n) for n in range(2)]
    names = RunNames.of([a, b, c, *wide, *alike])
    assert names.name(a) == "p · adapt=off, steps=1"
    assert names.name(b) == "p · adapt=both, added=null, steps=true"
    assert names.name(c) == "p · adapt=é\\n" + "x" * 19 + "..., steps=1.0"
    assert names.name(wide[0]).startswith("q · key0=0, key1=0, key10=0, key11=0, key2=0")
    assert len(names.settings[wide[0].run_id]) == SETTINGS_CHARS
    assert [names.name(r) for r in alike] == ["r", "r"]


def test_ci_workflow_and_make_target_build_the_site_from_results() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "leaderboard.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML reads `on:` as True
    assert "push" in triggers and "pull_request" in triggers  # submissions arrive as PRs
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(step.get("run", "").strip() == "make leaderboard" for step in steps)
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-")]
    assert uploads and uploads[0]["with"]["path"] == "build/site"
    assert uploads[0].get("if") == "always()"  # the site, with its rejections, even when red
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"^leaderboard:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "taskmem-bench leaderboard build results -o build/site" in target


def test_ci_publishes_the_site_with_github_pages_from_the_default_branch_only() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "leaderboard.yml").read_text())
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    package = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert package["with"]["path"] == "build/site"
    for condition in ("github.event_name != 'pull_request'",
                      "github.ref_name == github.event.repository.default_branch"):
        assert condition in package["if"]  # a pull request never publishes
    assert deploy["needs"] == "build" and "needs.build.outputs.pages == 'success'" in deploy["if"]
    assert build["outputs"]["pages"] == "${{ steps.%s.outcome }}" % package["id"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert workflow["permissions"] == {"contents": "read"}  # only the deploy job may write
    assert deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]


def test_build_site_refuses_to_replace_a_file(leaderboard_bundles: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "b.tar.gz").write_bytes(leaderboard_bundles["blind"].read_bytes())
    (tmp_path / "file").write_text("x")
    with pytest.raises(SiteError):
        build_site(tmp_path / "r", tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_the_site_is_world_readable_and_a_linked_output_is_refused_up_front(
    leaderboard_bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "r"
    results.mkdir()
    (results / "b.tar.gz").write_bytes(leaderboard_bundles["blind"].read_bytes())
    site = build_site(results, tmp_path / "site").site
    assert stat.S_IMODE(site.stat().st_mode) == 0o755  # a web server must be able to read it
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setattr("leaderboard.site.collect", lambda _: pytest.fail("validated before refusing"))
    with pytest.raises(SiteError, match="is a symbolic link; give the real folder as -o"):
        build_site(results, tmp_path / "link")
    assert list((tmp_path / "real").iterdir()) == []


def test_entries_missing_a_benchmark_rank_after_complete_ones(leaderboard_bundles: dict[str, Path]) -> None:
    """Oracle beats keep-speech on mini, but keep-speech also has a (harder) second benchmark:
    a mean over fewer benchmarks must not outrank a mean over all of them."""
    oracle, speech = (validate_bundle(read_bundle(leaderboard_bundles[k])) for k in ("oracle", "speech"))
    task = speech.manifest.task.model_copy(update={"name": "other"})
    elsewhere = dataclasses.replace(speech, manifest=speech.manifest.model_copy(update={"task": task}),
                                    scores=dataclasses.replace(speech.scores, acc=0.0))
    board = tables.entries([oracle, speech, elsewhere])
    assert [(e.policy, e.complete) for e in board] == [(speech.policy, True), ("oracle", False)]
    assert board[1].mean_acc > board[0].mean_acc
