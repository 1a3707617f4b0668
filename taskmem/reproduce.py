"""``taskmem-bench reproduce taskmem``: the paper's table on the mini environments, from the
shipped Phase One checkpoint, by one command.

Per environment (``mini_<env>_large``) it runs the blind and oracle controls and the ``taskmem``
policy twice, as shipped (``adapt=off``: Phase One) and adapting to the environment's tasks
(the policy's default ``adapt=both``: TaskMem). It then runs the cross-environment control: the
last adapter TaskMem trained on count_ocr's tasks, applied to action_time's streams without
further adaptation. Every run goes through the ordinary ``taskmem-bench run`` command and is
scored from its rows, so nothing here can score differently from the harness.

Printed: Acc / Cov / Prec per policy and environment; the paired gain TaskMem - Phase One on the
questions of the streams that ran after TaskMem's first adaptation (the same questions, a 95 %
interval clustered by stream); the control's gain over Phase One on action_time; each
adaptation's wall time, peak memory and size. The runs are exported as result bundles.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from taskmem_bench import cli
from taskmem_bench.results import Adaptation, RunDir
from taskmem_bench.scoring.metrics import PairedDifference, paired_difference, score_rows
from taskmem_bench.taskconfig import ConfigError
from taskmem_bench.trainer import Reproduction

ENVIRONMENTS = ("count_ocr", "action_time", "mixed")
CONTROL = ("count_ocr", "action_time")
"""The cross-environment control: the adapter learned on the first, applied to the second."""
ROWS = (("blind", "blind"), ("oracle (time order)", "oracle"), ("Phase One", "phase_one"),
        ("TaskMem", "taskmem"))


@dataclass(frozen=True)
class Paths:
    """Where each run of the reproduction lives under ``out``."""

    out: Path

    def task(self, environment: str) -> str:
        return f"mini_{environment}_large"

    def run(self, environment: str, arm: str) -> Path:
        """``arm`` is blind, oracle, phase_one, taskmem or control."""
        root = self.out / environment
        if arm in ("blind", "oracle"):
            return root / "phase_one" / self.task(environment) / arm
        return root / arm / self.task(environment) / "taskmem"


def run_all(paths: Paths, limit: int | None, overrides: Sequence[str]) -> None:
    """Every run of the reproduction through ``taskmem-bench run``, skipping those already
    finished in ``paths.out`` (so a stopped reproduction goes on where it stopped); a failing
    run stops it. ``overrides`` are ``--set`` values for every run; ``adapt`` is the
    reproduction's own."""
    if any(o.partition("=")[0].split(".")[-1] == "adapt" for o in overrides):
        raise ConfigError("reproduce sets adapt itself (off for Phase One, both for TaskMem)")
    common = [*(["--limit", str(limit)] if limit else []),
              *(a for o in overrides for a in ("--set", o))]
    same_arguments(paths.out, common)
    for env in ENVIRONMENTS:
        arms = (("phase_one", "blind,oracle,taskmem", ["--set", "adapt=off"]),
                ("taskmem", "taskmem", []))
        for arm, policies, settings in arms:
            if not finished(paths, env, arm):
                _cli("run", "--task", paths.task(env), "--policy", policies, *settings,
                     "--out", str(paths.out / env / arm), *common)
    source, target = CONTROL
    adapter = last_adapter(paths.run(source, "taskmem"))
    if adapter is None:
        print(f"TaskMem trained no adapter on {source}: the cross-environment control is not run")
    elif not finished(paths, target, "control", adapter):
        _cli("run", "--task", paths.task(target), "--policy", "taskmem", "--set", "adapt=off",
             "--set", f"lora_path={adapter}", "--out", str(paths.out / target / "control"),
             *common)


def same_arguments(out: Path, arguments: list[str]) -> None:
    """Record the runs' arguments in ``out``, or refuse ones that differ from those its
    finished runs were made with (they would be reused as if they matched)."""
    record = out / "reproduce-arguments.json"
    if record.exists() and json.loads(record.read_text()) != arguments:
        raise ConfigError(f"{out} holds runs made with other arguments "
                          f"({' '.join(json.loads(record.read_text())) or 'none'}): use another --out")
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(arguments) + "\n")


def finished(paths: Paths, env: str, arm: str, adapter: str | None = None) -> bool:
    """Whether an arm's runs are done and can be reused: finished, with no failed stream, and
    (the control) made with ``adapter``. One begun and not finished, one with failures, or a
    control of another adapter is refused: a run directory of TaskMem cannot be resumed."""
    folder, run = paths.out / env / arm, paths.run(env, arm)
    if not folder.exists():
        return False
    if not (run / "summary.json").exists():
        raise ConfigError(f"{folder} holds an unfinished run: remove it to run it again")
    failed = rows(run)["failure"].drop_nulls().len()
    if failed:
        raise ConfigError(f"{folder} has {failed} failed rows: remove it to run it again")
    if adapter is not None and RunDir(run).manifest().policy.config.get("lora_path") != adapter:
        raise ConfigError(f"{folder} was made with another adapter than TaskMem's last on "
                          f"{CONTROL[0]}: remove it to run it again")
    return True


def _cli(*argv: str) -> None:
    code = cli.main(list(argv))
    if code != 0:
        raise ConfigError(f"`taskmem-bench {' '.join(argv)}` exited {code}")


def adaptations(run_dir: Path) -> list[Adaptation]:
    return RunDir(run_dir).adaptations()


def last_adapter(run_dir: Path) -> str | None:
    """The folder of the last adapter a run's policy trained, if any."""
    done = [a.record["adapter"]["folder"] for a in adaptations(run_dir)
            if a.record and a.record.get("adapter")]
    return done[-1] if done else None


def streams_before_first_adaptation(run_dir: Path) -> set[str] | None:
    """The streams that ran before the policy first changed what it deploys (a new adapter or
    supplement); None when it never did."""
    seen: set[str] = set()
    for wave in adaptations(run_dir):
        seen |= set(wave.stream_ids)
        if wave.record and wave.record.get("adapted"):
            return seen
    return None


def rows(run_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "rows.parquet")


def gain(treated: Path, control: Path, skip_streams: set[str] = frozenset()) -> PairedDifference:
    """Treated minus control accuracy, paired by question, on the streams not in
    ``skip_streams``."""
    a = rows(treated).filter(~pl.col("stream_id").is_in(list(skip_streams)))
    b = rows(control).select("question_id", pl.col("correct").alias("control_correct"))
    both = a.join(b, on="question_id", how="inner")
    if both.height != a.height:
        raise ConfigError(f"{treated} and {control} do not hold the same questions")
    return paired_difference(both["correct"].to_list(), both["control_correct"].to_list(),
                             both["stream_id"].to_list())


def identical_before(adapted: Path, fixed: Path, before: set[str] | None) -> bool:
    """Whether TaskMem and Phase One wrote the same memory on the streams before TaskMem first
    adapted (all streams when it never did): they are the same policy until then, so anything
    else is nondeterminism."""
    logs_a, logs_b = ({log.stream_id: log.entries for log in RunDir(run).memory_logs().values()}
                      for run in (adapted, fixed))
    return all(entries == logs_b.get(stream) for stream, entries in logs_a.items()
               if before is None or stream in before)


def summarize(paths: Paths) -> dict[str, Any]:
    """The table, the gains, the control and the adaptation costs, from the finished runs."""
    table = {env: {arm: asdict(score_rows(rows(paths.run(env, arm)))) for _, arm in ROWS}
             for env in ENVIRONMENTS}
    gains, same_before = {}, {}
    for env in ENVIRONMENTS:
        adapted, fixed = paths.run(env, "taskmem"), paths.run(env, "phase_one")
        before = streams_before_first_adaptation(adapted)
        gains[env] = None if before is None else asdict(gain(adapted, fixed, before))
        same_before[env] = identical_before(adapted, fixed, before)
    source, target = CONTROL
    ran = (paths.run(target, "control") / "rows.parquet").exists()
    control = (asdict(gain(paths.run(target, "control"), paths.run(target, "phase_one")))
               if ran else {"mean": None})
    costs = {env: [cost(a) for a in adaptations(paths.run(env, "taskmem")) if a.record or a.error]
             for env in ENVIRONMENTS}
    return {"table": table, "gain_after_first_adaptation": gains,
            "identical_before_first_adaptation": same_before,
            "cross_environment_control": {"adapter_from": source, "applied_to": target, **control},
            "adaptations": costs}


def cost(adaptation: Adaptation) -> dict[str, Any]:
    """What one adaptation did and cost, for the summary."""
    record = adaptation.record or {}
    return {"wave": adaptation.wave, "wall_s": round(adaptation.wall_s, 1),
            "error": adaptation.error,
            **{k: record.get(k) for k in ("tasks", "cutoff", "candidates", "kept", "wins", "pairs",
                                          "dpo_losses", "rss_start_mb", "peak_rss_mb",
                                          "buffer_bytes")}}


def markdown(summary: dict[str, Any]) -> str:
    """The summary as the paper's table and the gain lines."""
    def pct(x: float | None) -> str:
        return "—" if x is None else f"{100 * x:.1f}"

    def interval(d: dict[str, Any] | None, missing: str = "no adaptation") -> str:
        if d is None or d["mean"] is None:
            return f"— ({missing})"
        if not d["changed"]:
            return f"+0.0: no verdict changed, on {d['n']} questions, {d['streams']} streams"
        ci = "" if d["ci_low"] is None else f" [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"
        return f"{100 * d['mean']:+.1f}{ci} on {d['n']} questions, {d['streams']} streams"

    lines = ["| policy | " + " | ".join(ENVIRONMENTS) + " |",
             "|---|" + "---|" * len(ENVIRONMENTS)]
    for label, arm in ROWS:
        cells = [" / ".join(pct(summary["table"][env][arm][k]) for k in ("acc", "cov", "prec"))
                 for env in ENVIRONMENTS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Cells are Acc / Cov / Prec (%).", "",
              "Paired gain TaskMem - Phase One, questions after the first adaptation (95 % CI, "
              "clustered by stream):"]
    lines += [f"- {env}: {interval(summary['gain_after_first_adaptation'][env])}"
              for env in ENVIRONMENTS]
    drifted = [env for env, same in summary["identical_before_first_adaptation"].items()
               if not same]
    lines.append("Before TaskMem's first adaptation its memory equals Phase One's"
                 + (": yes, in every environment" if not drifted
                    else f" except in {', '.join(drifted)} (nondeterminism: check the runs)"))
    c = summary["cross_environment_control"]
    lines += ["", f"Cross-environment control ({c['adapter_from']}'s adapter on "
              f"{c['applied_to']}) - Phase One: {interval(c, 'not run: no adapter')}", "", "Adaptations:"]
    for env in ENVIRONMENTS:
        for a in summary["adaptations"][env]:
            what = a["error"] or (
                f"{a['tasks']} tasks (cutoff {a['cutoff']}), {a['candidates']} candidates, "
                f"{a['kept']} kept, {a['wins']} consistent wins, {a['pairs']} pairs, "
                f"{a['wall_s']} s, peak RSS {a['peak_rss_mb']} MiB"
                + (f" ({a['rss_start_mb']} MiB at its start)" if a["rss_start_mb"] else "")
                + ", buffer "
                f"{(a['buffer_bytes'] or 0) / 2**20:.1f} MiB")
            lines.append(f"- {env}, after wave {a['wave']}: {what}")
    return "\n".join(lines)


def export(paths: Paths, results: Path) -> list[Path]:
    """Every run but the control as a result bundle in ``results``."""
    made = []
    for env in ENVIRONMENTS:
        for _, arm in ROWS:
            bundle = results / f"{paths.task(env).replace('_', '-')}-{arm.replace('_', '-')}.tar.gz"
            _cli("export", str(paths.run(env, arm)), "--bundle", str(bundle))
            made.append(bundle)
    return made


class TaskMemReproduction(Reproduction):
    """The reproduction registered as ``taskmem`` (see the module docstring)."""

    name = "taskmem"
    description = "TaskMem's table, gains and control on the mini environments"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, default=Path("runs/reproduce-taskmem"))
        parser.add_argument("--limit", type=int, help="only the first N streams per environment")
        parser.add_argument("--results", type=Path, default=Path("results"),
                            help="where the bundles go")
        parser.add_argument("--no-export", action="store_true", help="write no bundles")
        parser.add_argument("--summarize-only", action="store_true",
                            help="print the figures of finished runs in --out, run nothing")
        parser.add_argument("--set", dest="overrides", action="append", default=[],
                            metavar="KEY=VALUE", help="passed to every run (repeatable)")

    def run(self, args: argparse.Namespace) -> int:
        paths = Paths(args.out)
        if not args.summarize_only:
            run_all(paths, args.limit, args.overrides)
        summary = summarize(paths)
        text = markdown(summary)
        (paths.out / "reproduce.json").write_text(json.dumps(summary, indent=2) + "\n")
        (paths.out / "reproduce.md").write_text(text + "\n")
        print(text)
        if not args.no_export:
            for bundle in export(paths, args.results):
                print(f"exported {bundle}")
        return 0
