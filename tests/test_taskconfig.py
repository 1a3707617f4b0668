"""Task YAML, includes, and --set overrides."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from baselines.controls import OracleConfig
from taskmem_bench.plan import build_plan
from taskmem_bench.schema import MemoryBudget
from taskmem_bench.taskconfig import ConfigError, available_tasks, load_task, parse_override


def test_shipped_tasks_load_and_are_package_data() -> None:
    assert {"mini", "mini_count_ocr", "mini_action_time", "mini_large"} <= set(available_tasks())
    assert files("taskmem_bench.tasks").joinpath("mini.yaml").is_file()
    for name in available_tasks():
        task = load_task(name)
        assert task.name == name and task.stream.clip_seconds == 10


def test_include_merges_underneath() -> None:
    base, derived = load_task("mini"), load_task("mini_count_ocr")
    assert derived.dataset_args["environment"] == "count_ocr"
    assert derived.dataset_args["episodes"] == base.dataset_args["episodes"]
    assert derived.memory == base.memory and derived.to_dict() != base.to_dict()


def test_yaml_path_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("include: %s\nmemory: {tokens_per_clip: 99}\n" % files("taskmem_bench.tasks").joinpath("mini.yaml"))
    assert load_task(str(good)).memory == MemoryBudget(tokens_per_clip=99)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndataset: mini\nstream: {clip_secs: 3}\n")
    with pytest.raises(ConfigError, match="unknown key.*clip_secs"):
        load_task(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        load_task(str(tmp_path / "missing.yaml"))


def test_overrides_reach_the_sections_that_have_the_key() -> None:
    task = load_task("mini")
    plan = build_plan(
        task, "oracle",
        overrides=[
            parse_override("tokens_per_clip=none"), parse_override("sample_fps=4"),
            parse_override("policy.order=priority"), parse_override("episodes=3"),
            parse_override("batch_size=2"),
        ],
    )
    assert plan.task.memory == MemoryBudget(tokens_per_clip=None)
    assert plan.task.stream.sample_fps == 4.0
    assert plan.policy_config == OracleConfig(order="priority")
    assert plan.dataset_config.episodes == 3 and plan.task_record()["dataset_args"]["episodes"] == 3
    assert plan.settings.batch_size == 2
    assert plan.task_record() != task.to_dict()


def test_bad_override_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match="policy.*order"):
        build_plan(load_task("mini"), "oracle", overrides=[parse_override("order=random")])
    with pytest.raises(ConfigError, match="unknown --set key 'policy.nope'"):
        build_plan(load_task("mini"), "oracle", overrides=[parse_override("policy.nope=1")])


def test_a_qualified_key_wins_over_a_bare_one_in_any_order() -> None:
    for pairs in (["model=/m/any", "reader.model=/m/reader"],
                  ["reader.model=/m/reader", "model=/m/any"]):
        plan = build_plan(load_task("mini"), "caption", reader="paper",
                          overrides=[parse_override(p) for p in pairs])
        assert (plan.policy_config.model, plan.reader_config.model) == ("/m/any", "/m/reader")


def test_the_judge_is_set_only_through_judge_keys() -> None:
    """A bare key meant for the reader never configures the judge (no silent self-judging, no
    sampling judge); the judge's model must be named."""
    task = load_task("egotempo_stream")
    bare = [parse_override(p) for p in ("model=/m/reader", "temperature=0.7")]
    with pytest.raises(ConfigError, match="--set judge.model"):
        build_plan(task, "blind", overrides=bare)
    with pytest.raises(ConfigError, match="--set judge.model"):
        build_plan(task, "blind", overrides=[*bare, parse_override("judge.model=")])
    plan = build_plan(task, "blind", overrides=[*bare, parse_override("judge.model=/m/judge")])
    assert (plan.judge_config.model, plan.judge_config.temperature) == ("/m/judge", 0.0)
    assert (plan.reader_config.model, plan.reader_config.temperature) == ("/m/reader", 0.7)
    assert build_plan(load_task("mini"), "blind").judge_config is None


def test_egolife_paper_keeps_its_three_samples_with_its_own_reader() -> None:
    task = load_task("egolife_paper")
    assert (task.memory_view, task.scoring) == ("paper_window", "egolife")
    model = [parse_override("model=/m/reader")]
    for reader in (None, "paper"):
        config = build_plan(task, "blind", reader=reader, overrides=model).reader_config
        assert (config.samples, config.temperature) == (3, 0.7)
    assert build_plan(task, "blind", reader="retrieval", overrides=model).reader_config.samples == 1


def _task_file(tmp_path: Path, extra: str) -> str:
    path = tmp_path / "judged.yaml"
    path.write_text("include: %s\n%s" % (files("taskmem_bench.tasks").joinpath("egotempo_stream.yaml"), extra))
    return str(path)


def test_policy_and_judge_args_take_the_route_reader_args_take(tmp_path: Path) -> None:
    """A task's policy_args, reader_args and judge_args start their component's config, and
    ``--set`` wins over each the same way."""
    task = load_task(_task_file(tmp_path, (
        "policy_args: {max_new_tokens: 77, temperature: 0.3}\n"
        "reader_args: {samples: 3, temperature: 0.7}\n"
        "judge_args: {model: /m/judge, max_new_tokens: 9}\n"
        "reader: paper\n"
    )))
    model = parse_override("model=/m/any")
    plan = build_plan(task, "caption", overrides=[model])
    assert (plan.policy_config.max_new_tokens, plan.policy_config.temperature) == (77, 0.3)
    assert (plan.reader_config.samples, plan.reader_config.temperature) == (3, 0.7)
    assert (plan.judge_config.model, plan.judge_config.max_new_tokens) == ("/m/judge", 9)
    assert plan.task.policy_args == plan.task.reader_args == plan.task.judge_args == {}
    overrides = [model, *map(parse_override, ("policy.max_new_tokens=5", "temperature=0.9",
                                              "judge.max_new_tokens=4", "judge.model=/m/other"))]
    plan = build_plan(task, "caption", overrides=overrides)
    assert (plan.policy_config.max_new_tokens, plan.policy_config.temperature) == (5, 0.9)
    assert (plan.reader_config.samples, plan.reader_config.temperature) == (3, 0.9)
    assert (plan.judge_config.model, plan.judge_config.max_new_tokens) == ("/m/other", 4)
    assert plan.judge_config.temperature == 0.0  # a bare key never reaches the judge
    record = plan.task_record()
    assert "policy_args" not in record and "judge_args" not in record
    assert record["reader_args"]["samples"] == 3


def test_task_args_are_checked_against_their_components_config(tmp_path: Path) -> None:
    task = load_task(_task_file(tmp_path, "policy_args: {max_new_token: 7}\n"))
    with pytest.raises(ConfigError, match="policy: unknown key.*max_new_token"):
        build_plan(task, "caption", overrides=[parse_override("model=/m/any")])
    mini = files("taskmem_bench.tasks").joinpath("mini.yaml")
    unjudged = tmp_path / "unjudged.yaml"
    unjudged.write_text(f"include: {mini}\njudge_args: {{model: /m/judge}}\n")
    with pytest.raises(ConfigError, match="judge_args given, but scoring 'paper' judges no"):
        load_task(str(unjudged))
