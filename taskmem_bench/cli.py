"""The ``taskmem-bench`` command: run, prepare, report, list, export, leaderboard build.

Exit codes: 0 success; 1 the run finished but some streams or questions failed (see the
summary) or it scored no question at all, or an exported bundle / some leaderboard bundles did
not pass validation; 2 the command could not start (unknown name, malformed option, a model-using
component without a model, unusable run dir or folder); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.markup import escape

from leaderboard.bundle import BundleError, export_bundle, read_bundle
from leaderboard.errors import Rejected
from leaderboard.site import SiteError, build_site
from leaderboard.validate import validate_bundle
from taskmem_bench.backends.lmeval import task_folder
from taskmem_bench.media import MediaError
from taskmem_bench.plan import RunPlan, build_plan, overridable_sections
from taskmem_bench.plugins import PLUGIN_KINDS, UnknownPluginError, registered
from taskmem_bench.policy import load_policy
from taskmem_bench.progress import RunTally, StepProgress
from taskmem_bench.provenance import build_manifest
from taskmem_bench.report import markdown, pct, report_record, table
from taskmem_bench.results import RunDir, RunDirError, find_summaries
from taskmem_bench.runner import RunOutcome, StreamingRunner
from taskmem_bench.scoring.metrics import JUDGE_ERROR
from taskmem_bench.taskconfig import (
    ConfigError,
    available_tasks,
    check_int64,
    load_task,
    parse_override,
)
from taskmem_bench.trainer import PackageCommand, Reproduction, Trainer

# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, UnknownPluginError, RunDirError, BundleError, SiteError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except (OSError, json.JSONDecodeError, MediaError) as exc:  # unusable paths or files
        err.print(f"[bold red]error:[/] {escape(f'{type(exc).__name__}: {exc}')}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:  # `run` says what finished and how to go on; others stop quietly
        err.print("interrupted", highlight=False)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskmem-bench", description="Streaming multimodal memory benchmarks."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run memorization policies on a task")
    run.add_argument("--task", required=True, help="task name (see `list tasks`) or YAML path")
    run.add_argument("--policy", required=True, help="policy name(s), comma separated, or module:Class")
    run.add_argument("--reader", help="reader name (default: the task's reader)")
    run.add_argument("--out", type=Path, help="output directory (default: runs/<task>-<time>)")
    run.add_argument("--limit", type=int, help="only the first N streams")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a task, dataset, policy, reader or run setting (repeatable)",
    )
    run.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    run.add_argument(
        "--executor", choices=("local", "ray"),
        help="where streams run: this process (local, the default) or Ray actors (the [ray] "
        "extra; ray_actors, ray_gpus_per_actor ... as --set); the same as --set executor=",
    )
    run.add_argument(
        "--ray-address", metavar="ADDR",
        help="the Ray cluster to join with --executor ray (default: a running one, else a new "
        "local one); the same as --set ray_address=",
    )
    run.add_argument(
        "--progress-every", type=float, default=30.0, metavar="SECONDS",
        help="seconds between plain progress lines when stderr is not a terminal (default 30)",
    )
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="print the scores of finished runs")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--format", choices=("table", "json", "csv", "markdown"), default="table")
    report.set_defaults(handler=_report)

    listing = commands.add_parser(
        "list", help="list tasks or the registered plugins of one kind; `lm-eval`: the lm_eval "
        "--include_path"
    )
    listing.add_argument("what", choices=("tasks", *PLUGIN_KINDS, "lm-eval"))
    listing.set_defaults(handler=_list)

    export = commands.add_parser("export", help="pack a finished run as a result bundle")
    export.add_argument("run_dir", type=Path, help="one (task, policy) run, e.g. runs/x/mini/oracle")
    export.add_argument("--bundle", type=Path, help="output file, e.g. mine.tar.gz")
    export.add_argument(
        "--format", dest="export_format", choices=("bundle", "videomme"), default="bundle",
        help="bundle (leaderboard) or videomme (the official per-video results JSON)",
    )
    export.add_argument("-o", "--output", type=Path, help="output file of --format videomme")
    export.add_argument("--link", help="http(s) page of the policy, shown on the leaderboard")
    export.set_defaults(handler=_export)

    prep = commands.add_parser("prepare", help="validate a dataset release and index its media")
    prep.add_argument("dataset", help="dataset name, e.g. videomme")
    prep.add_argument("--root", required=True, help="the release folder")
    prep.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="another dataset setting (repeatable)",
    )
    prep.add_argument(
        "--publish-manifest", type=Path, metavar="OUT.json",
        help="also write the release's question manifest (no question text) for the leaderboard",
    )
    prep.set_defaults(handler=_prepare)

    for verb, base, purpose in (("train", Trainer, "train a policy's models (e.g. taskmem)"),
                                ("reproduce", Reproduction, "reproduce a paper's figures (e.g. taskmem)")):
        command = commands.add_parser(verb, help=purpose)
        command.add_argument("name", help=f"one of: {', '.join(sorted(base.available()))}")
        command.add_argument("options", nargs=argparse.REMAINDER, help="the command's own options")
        command.set_defaults(handler=functools.partial(_package_command, verb, base))

    board = commands.add_parser("leaderboard", help="the static leaderboard site")
    board_commands = board.add_subparsers(dest="leaderboard_command", required=True)
    build = board_commands.add_parser("build", help="validate bundles and build the site")
    build.add_argument("results", type=Path, help="folder of result bundles (*.tar.gz)")
    build.add_argument("-o", "--out", type=Path, required=True, help="site folder to (re)write")
    build.set_defaults(handler=_leaderboard_build)
    return parser


def _run(args: argparse.Namespace) -> int:
    task = load_task(args.task)
    policies = [p.strip() for p in args.policy.split(",") if p.strip()]
    if not policies:
        raise ConfigError("--policy names no policy")
    twice = sorted({p for p in policies if policies.count(p) > 1})
    if twice:
        raise ConfigError(f"--policy lists {', '.join(twice)} twice")
    if not args.progress_every > 0:
        raise ConfigError(
            f"--progress-every must be a positive number of seconds, got {args.progress_every}"
        )
    overrides = [parse_override(text) for text in args.overrides]
    overrides += [("run.executor", args.executor)] if args.executor else []
    overrides += [("run.ray_address", args.ray_address)] if args.ray_address else []
    _check_override_keys(task, policies, args.reader, overrides)
    check_int64(args.seed, "--seed")
    check_int64(args.limit, "--limit")
    plans = [
        build_plan(
            task, p, reader=args.reader, overrides=overrides, seed=args.seed, limit=args.limit,
            strict=False,
        )
        for p in policies
    ]
    out_root = args.out or Path("runs") / f"{task.name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dirs = [out_root / _safe(task.name) / _safe(plan.policy_name) for plan in plans]
    release = None
    try:
        release = _load(plans[0], args.progress_every)
        for plan in plans:
            plan.check_release(release)
        outcomes = [
            _run_one(plan, release, run_dir, resume=args.resume, interval_s=args.progress_every)
            for plan, run_dir in zip(plans, run_dirs)
        ]
    except KeyboardInterrupt:
        total = None if release is None else len(plans[0].episodes(release))
        err.print(escape(_interrupted(args, plans, run_dirs, total, out_root)),
                  highlight=False, soft_wrap=True)
        return 130

    out.print(table(
        [report_record(outcome.run_dir, outcome.summary, plan.scoring)
         for plan, outcome in zip(plans, outcomes)],
        title=f"{task.name} — results in {out_root}",
    ))
    failed = [o for o in outcomes if _report_failures(o)]
    empty = [o for o in outcomes if not o.summary["n"]]
    for outcome in empty:
        err.print(
            f"[bold yellow]warning:[/] {escape(str(outcome.run_dir))} scored no question (n = 0): "
            f"the release gives this run {outcome.summary['streams']['total']} streams and no "
            f"question; {outcome.summary['skipped']} items were skipped by the dataset adapter "
            "(listed in manifest.json)", highlight=False, soft_wrap=True,
        )
    return 1 if failed or empty else 0


def _load(plan: RunPlan, interval_s: float) -> Any:
    """The dataset release, built only as far as ``--limit`` needs, with progress shown."""
    task = plan.task
    err.print(f"loading dataset [bold]{task.dataset}[/] for task [bold]{task.name}[/] ...")
    with StepProgress(err, f"loading {task.dataset}", interval_s=interval_s) as progress:
        release = plan.adapter().load_first(
            plan.dataset_config, plan.limit, progress.counter("episodes generated")
        )
    if release.skipped:
        err.print(f"[yellow]{len(release.skipped)} items skipped by the dataset adapter[/]")
    return release


def _interrupted(
    args: argparse.Namespace, plans: list[RunPlan], run_dirs: list[Path], total: int | None,
    out_root: Path,
) -> str:
    """One line after Ctrl-C: how many streams each policy finished, and the exact command
    that continues the run."""
    of = "" if total is None else f"/{total}"
    done = ", ".join(
        f"{plan.policy_name} {len(RunDir(run_dir).finished_streams())}{of} streams"
        for plan, run_dir in zip(plans, run_dirs)
    )
    return f"interrupted: finished {done}; continue with: {_resume_command(args, out_root)}"


def _resume_command(args: argparse.Namespace, out_root: Path) -> str:
    """This ``run`` command as parsed, with ``--out`` fixed and ``--resume``."""
    words = ["taskmem-bench", "run", "--task", args.task, "--policy", args.policy]
    words += ["--reader", args.reader] if args.reader else []
    words += ["--limit", str(args.limit)] if args.limit is not None else []
    words += ["--seed", str(args.seed)]
    words += ["--executor", args.executor] if args.executor else []
    words += ["--ray-address", args.ray_address] if args.ray_address else []
    for override in args.overrides:
        words += ["--set", override]
    return shlex.join([*words, "--out", str(out_root), "--resume"])


def _report_failures(outcome: RunOutcome) -> bool:
    """Print what failed in a run, one line per distinct cause with the streams and questions
    it cost; whether anything failed."""
    causes = RunDir(outcome.run_dir).failure_causes()
    if not causes and not outcome.failed_streams:
        return False
    s = outcome.summary
    err.print(
        f"[bold red]failures[/] in {escape(str(outcome.run_dir))}: {len(outcome.failed_streams)} "
        f"of {s['streams']['total']} streams failed; {s['failed']} of {s['n']} questions failed "
        "(counted wrong and not covered):", highlight=False, soft_wrap=True,
    )
    for cause in causes:
        streams = f"{len(cause.streams)} stream{'s' * (len(cause.streams) != 1)}"
        err.print(
            f"  {escape(cause.reason)} in {streams} ({cause.questions} questions; e.g. "
            f"{escape(cause.streams[0])}): {escape(cause.error)}", highlight=False, soft_wrap=True,
        )
    misjudged = s["failures"].get(JUDGE_ERROR, 0)
    judge_note = f"{misjudged} answers could not be judged; " if misjudged else ""
    err.print(
        f"  {judge_note}Full tracebacks: parts/*.failure.json and the rows' `error` column; "
        "`--resume` runs failed streams again, and those with answers the LLM judge failed on.",
        highlight=False, soft_wrap=True,
    )
    return True


def _check_override_keys(
    task: Any, policies: list[str], reader: str | None, overrides: list[tuple[str, Any]]
) -> None:
    """With several policies a key may belong to one of them only; it must belong to some."""
    valid: set[str] = set()
    for name in policies:
        for section in overridable_sections(task, load_policy(name), reader):
            valid |= {f"{section.name}.{f}" for f in section.field_names}
            valid |= {f for f in section.field_names if section.takes(f, bare=True)}
    unknown = [key for key, _ in overrides if key not in valid]
    if unknown:
        keys = sorted(k for k in valid if "." in k)
        raise ConfigError(f"unknown --set key '{unknown[0]}'; valid keys: {', '.join(keys)}")


def _run_one(
    plan: RunPlan, release: Any, run_dir: Path, *, resume: bool, interval_s: float
) -> RunOutcome:
    manifest = build_manifest(plan.describe(release), command=sys.argv)
    progress = StepProgress(err, plan.policy_name, interval_s=interval_s)
    tally = RunTally(progress, plan.episodes(release), plan.task.stream.clip_seconds)
    with progress:
        outcome = StreamingRunner(plan, release, run_dir, on_progress=tally).run(
            manifest, resume=resume
        )
    if outcome.resumed_streams:
        err.print(f"resumed {run_dir}: kept {outcome.resumed_streams} finished streams")
    for lost in outcome.lost_workers:
        err.print(f"[bold yellow]warning:[/] a Ray actor was lost ({escape(lost)}); its unfinished "
                  "streams were started again on another, up to ray_stream_attempts",
                  highlight=False, soft_wrap=True)
    return outcome


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _report(args: argparse.Namespace) -> int:
    found = find_summaries(args.run_dir)
    if not found:
        raise ConfigError(f"no finished runs (summary.json) under {args.run_dir}")
    records = [report_record(path, summary) for path, summary in found]
    if args.format == "json":
        print(json.dumps(records, indent=2))
    elif args.format == "csv":
        print(pl.DataFrame(records).write_csv(), end="")
    elif args.format == "markdown":
        print(markdown(records))
    else:
        out.print(table(records, title=str(args.run_dir)))
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        for name in available_tasks():
            print(f"{name}\t{load_task(name).description}")
    elif args.what == "lm-eval":
        print(task_folder())  # lm-eval task YAMLs that score a saved run (tasks/lm_eval)
    else:
        for name, target in sorted(registered(f"taskmem_bench.{args.what.replace('-', '_')}").items()):
            print(f"{name}\t{target}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """Pack the run, then check the bundle as the leaderboard will, so a contributor learns
    about a rejection before submitting."""
    if args.export_format == "videomme":
        return _export_videomme(args)
    if args.bundle is None:
        raise ConfigError("export needs --bundle FILE (or --format videomme -o FILE)")
    path = export_bundle(args.run_dir, args.bundle, link=args.link)
    try:
        run = validate_bundle(read_bundle(path))
    except Rejected as exc:
        err.print(f"[bold red]wrote {escape(str(path))}, but the leaderboard would reject it:[/] "
                  f"{escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    out.print(f"wrote {escape(str(path))}: {escape(run.policy)} on {run.task}, track {run.track}, "
              f"Acc {pct(run.scores.acc)} (re-scored)", highlight=False, soft_wrap=True)
    return 0


def _export_videomme(args: argparse.Namespace) -> int:
    from taskmem_bench.export_videomme import export_videomme

    if args.output is None:
        raise ConfigError("export --format videomme needs -o FILE")
    try:
        results = export_videomme(args.run_dir, args.output)
    except ValueError as exc:  # rows of another dataset
        raise ConfigError(str(exc)) from None
    questions = sum(len(video["questions"]) for video in results)
    out.print(f"wrote {escape(str(args.output))}: {len(results)} videos, {questions} questions "
              "(Video-MME results format)", highlight=False, soft_wrap=True)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from taskmem_bench.datasets import load_adapter
    from taskmem_bench.datasets.prepare import config_for, prepare, report_lines

    adapter = load_adapter(args.dataset)()
    config = config_for(adapter, args.root, dict(map(parse_override, args.overrides)))
    report = prepare(adapter, config)
    # the report first: a refused manifest's error points at the items it lists
    lines = report_lines(report)
    if args.publish_manifest is not None:
        from taskmem_bench.question_manifest import publish

        _print_lines(lines)
        lines = publish(adapter, config, report, args.publish_manifest)
    _print_lines(lines)
    return 0


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        out.print(escape(line), highlight=False, soft_wrap=True)


def _package_command(verb: str, base: type[PackageCommand], args: argparse.Namespace) -> int:
    command = base.load(args.name)
    parser = argparse.ArgumentParser(prog=f"taskmem-bench {verb} {args.name}",
                                     description=command.description)
    command.add_arguments(parser)
    return command().run(parser.parse_args(args.options))


def _leaderboard_build(args: argparse.Namespace) -> int:
    result = build_site(args.results, args.out)
    for rejection in result.rejected:
        err.print(f"[bold red]rejected[/] {escape(rejection.source)}: {escape(rejection.reason)}",
                  highlight=False, soft_wrap=True)
    out.print(f"built {escape(str(result.site))}: {len(result.accepted)} runs accepted, "
              f"{len(result.rejected)} rejected", highlight=False, soft_wrap=True)
    return 1 if result.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
