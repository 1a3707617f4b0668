"""mini environments: named task mixes, and mixes a user writes (``counting:0.4,ocr:0.4``) that
are checked, named canonically in the revision, and seeded apart from the named ones."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from leaderboard.errors import Rejected
from leaderboard.known import check_known
from taskmem_bench.cli import main
from taskmem_bench.datasets.mini import (
    CATEGORIES, ENVIRONMENTS, Config, MiniDataset, parse_mix, plan_episode,
)
from taskmem_bench.manifest import Manifest
from taskmem_bench.taskconfig import available_tasks, config_hash, load_task
from leaderboard_support import COMMITTED, read_members

TASKS = Path(__file__).parent.parent / "tasks"
AT_HEAD = {
    # sha256 of the 12 default episodes' planned questions (text, options, gold, ask times,
    # tags), taken from the code before written mixes existed: named environments must keep them.
    "mixed": "893e51fc4e121dd586f0b2f23fe499072f84d94686b5669050d6e3090260d69c",
    "count_ocr": "7d9f78cca3861cf55799997bcbe652422fc8fb21e4eec39fd8c5cdb09286d64a",
    "action_time": "90af3d314366b9186e421275711e89351a1a633e0f562fcc028f1665329743e8",
}


def _planned_digest(config: Config) -> str:
    planned = [dataclasses.asdict(s) for s in MiniDataset().planned_streams(config)]
    return hashlib.sha256(json.dumps(planned, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_named_environments_generate_the_questions_they_always_did(environment: str) -> None:
    config = Config(environment=environment)
    assert _planned_digest(config) == AT_HEAD[environment]
    assert MiniDataset().revision(config) == (
        f"mini-v1:{environment}:seed=0:episodes=12:seconds=120:size=192:fps=4")
    assert plan_episode(config, 0).stream_id == f"mini-{environment}-0000"


def test_mixed_questions_are_those_of_the_committed_bundle() -> None:
    """The committed oracle bundle recorded every question of the full mixed split."""
    members = read_members(COMMITTED / "mini-oracle.tar.gz")
    manifest = json.loads(members["manifest.json"])
    rows = pl.read_parquet(io.BytesIO(members["rows.parquet"]))
    config = Config(**manifest["dataset"]["config"])
    assert MiniDataset().revision(config) == manifest["dataset"]["revision"]
    planned = {q.question_id: q for s in MiniDataset().planned_streams(config) for q in s.questions}
    assert sorted(planned) == sorted(rows["question_id"])
    for row in rows.iter_rows(named=True):
        question = planned[row["question_id"]]
        assert (question.text, list(question.options), question.gold, question.ask_time,
                question.category, question.tags) == (
            row["question"], json.loads(row["options"]), row["gold"], row["ask_time"],
            row["category"], json.loads(row["tags"]))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("nope", "unknown mini environment 'nope'; choose from mixed, count_ocr, action_time"),
        ("counting", "unknown mini environment 'counting'"),
        ("count:0.4", "unknown category 'count'"),
        ("counting:0.4,,ocr:0.1", "entry '' is not category:weight"),
        ("counting:0.4,ocr", "entry 'ocr' is not category:weight"),
        ("counting:", "entry 'counting:' is not category:weight"),
        ("ocr:-0.1", "weight '-0.1' of ocr is not a number from 0 to 1"),
        ("ocr:lots", "weight 'lots' of ocr is not a number from 0 to 1"),
        ("ocr:nan", "weight 'nan' of ocr"),
        ("ocr:0.1,ocr:0.2", "category 'ocr' is given twice"),
        ("counting:0.7,ocr:0.4", "weights sum to 1.1, over 1"),
        ("ocr:1.5", "weights sum to 1.5, over 1"),
        (",".join(f"{c}:0.1" for c in CATEGORIES), "names every category, so its weights must"),
    ],
)
def test_a_bad_mix_is_refused_with_one_line_naming_the_problem(text: str, needle: str) -> None:
    with pytest.raises(ValueError) as caught:
        Config(environment=text)
    message = str(caught.value)
    assert needle in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "needle"),
    [("counting:0.7,ocr:0.7", "weights sum to 1.4, over 1"),
     ("colour:0.5", "unknown category 'colour'")],
)
def test_a_bad_mix_exits_2_with_one_line_from_the_cli(
    text: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--task", "mini", "--policy", "blind", "--limit", "1",
            "--set", f"environment={text}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in " ".join(err.split()) and len(err.strip().splitlines()) <= 3


def test_a_mix_written_in_a_task_file_runs_and_records_its_canonical_form(
    mini_cache, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = tmp_path / "mine.yaml"
    task.write_text(f"include: {TASKS / 'mini.yaml'}\nname: mine\n"
                    "dataset_args:\n  environment: ocr:0.20, counting:.5\n  episodes: 1\n"
                    "  episode_seconds: 40\n")
    out = tmp_path / "run"
    assert main(["run", "--task", str(task), "--policy", "blind", "--out", str(out)]) == 0
    manifest = json.loads((out / "mine" / "blind" / "manifest.json").read_text())
    assert manifest["dataset"]["revision"].startswith("mini-v1:counting:0.5,ocr:0.2:seed=0:")
    rows = pl.read_parquet(out / "mine" / "blind" / "rows.parquet")
    assert rows.height > 0
    assert {json.loads(t)["environment"] for t in rows["tags"]} == {"counting:0.5,ocr:0.2"}


def test_the_same_mix_written_two_ways_is_the_same_split() -> None:
    one = Config(environment="ocr:0.20,counting:0.50", episodes=3)
    two = Config(environment=" counting : 5e-1 , ocr:.2", episodes=3)
    assert one.mix == two.mix and one.mix.name == "counting:0.5,ocr:0.2"
    assert MiniDataset().revision(one) == MiniDataset().revision(two)
    assert one.folder == two.folder
    assert _planned_digest(one) == _planned_digest(two)
    tags = {q.tags["environment"] for s in MiniDataset().planned_streams(one) for q in s.questions}
    assert tags == {"counting:0.5,ocr:0.2"}


def test_a_mix_equal_to_a_named_environment_is_that_environment() -> None:
    written = Config(environment="ocr:0.4,counting:0.4", episodes=2)
    named = Config(environment="count_ocr", episodes=2)
    assert written.mix == named.mix
    assert MiniDataset().revision(written) == MiniDataset().revision(named)
    assert _planned_digest(written) == _planned_digest(named)


def test_a_mix_s_episodes_follow_seed_mix_and_index_only() -> None:
    config = Config(environment="counting:0.5,ocr:0.2", episodes=48)
    first, again = plan_episode(config, 3), plan_episode(Config(environment="ocr:0.2,counting:0.5"), 3)
    assert first == again  # the split's size and the spelling do not matter
    other_mix = plan_episode(Config(environment="counting:0.5,ocr:0.3"), 3)
    other_seed = plan_episode(dataclasses.replace(config, seed=1), 3)
    named = {plan_episode(Config(environment=e), 3).world.digest for e in ENVIRONMENTS}
    digests = {first.world.digest, other_mix.world.digest, other_seed.world.digest}
    assert len(digests) == 3 and not digests & named
    assert config.mix.seed_key >= len(ENVIRONMENTS)
    assert MiniDataset().revision(config) != MiniDataset().revision(
        Config(environment="counting:0.5,ocr:0.3", episodes=48))


def test_a_mix_s_categories_come_in_the_shares_it_asks() -> None:
    """60 episodes (480 questions) at a fixed seed: each category's share within 5 points of
    its weight (a category is skipped at an ask time only when it has no question yet)."""
    config = Config(environment="counting:0.5,speech:0.25", episodes=60)
    counts = Counter(q.category for i in range(config.episodes)
                     for q, _ in plan_episode(config, i).questions)
    total = sum(counts.values())
    assert total == 480
    for category, weight in zip(CATEGORIES, config.mix.weights):
        assert abs(counts[category] / total - weight) <= 0.05, (category, counts)


def test_a_category_of_weight_zero_is_never_asked() -> None:
    """Weights that sum to 1 leave nothing to the rest, also when the decimals sum to
    0.9999999999999999 in floating point (0.7 + 0.2 + 0.1)."""
    for text, asked in (("object_recognition:0,speech:0", set(CATEGORIES) - {
            "object_recognition", "speech"}), ("counting:0.6,ocr:0.4", {"counting", "ocr"}),
            ("counting:0.7,ocr:0.2,speech:0.1", {"counting", "ocr", "speech"}),
            ("ocr:1", {"ocr"})):
        config = Config(environment=text, episodes=10)
        seen = {q.category for i in range(config.episodes)
                for q, _ in plan_episode(config, i).questions}
        assert seen == asked, text


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_every_environment_has_a_large_task_at_the_evaluation_seed(environment: str) -> None:
    """Enough tasks for adaptation to learn from, drawn from the evaluation seed (training
    seeds are kept apart by test_training_seeds_are_disjoint_from_every_shipped_tasks_seed,
    which covers every shipped mini task)."""
    task = load_task(f"mini_{environment}_large")
    config = Config(**task.dataset_args)
    assert task.dataset == "mini" and config.mix == parse_mix(environment)
    assert config.episodes >= 40 and config.seed == Config().seed
    assert "mini_large" in available_tasks()
    assert Config(**load_task("mini_large").dataset_args) == Config(episodes=200)


def _bundle_manifest_with(environment: str, revision: str | None = None) -> Manifest:
    """The committed oracle run's manifest, as if run with ``--set environment=...``."""
    manifest = json.loads(read_members(COMMITTED / "mini-oracle.tar.gz")["manifest.json"])
    dataset_args = {**manifest["dataset"]["config"], "environment": environment}
    manifest["task"]["config"]["dataset_args"] = dataset_args
    manifest["task"]["hash"] = config_hash(manifest["task"]["config"])
    manifest["dataset"]["config"] = dataset_args
    manifest["dataset"]["revision"] = revision or MiniDataset().revision(Config(**dataset_args))
    return Manifest.parse(manifest)


def test_the_leaderboard_knows_a_mix_by_its_canonical_revision() -> None:
    assert check_known(_bundle_manifest_with("counting:0.125")).name == "mini"  # it is mixed
    with pytest.raises(Rejected, match="is not the one task mini uses"):
        check_known(_bundle_manifest_with("ocr:0.2,counting:0.5"))
    with pytest.raises(Rejected, match="does not match the dataset config it states"):
        check_known(_bundle_manifest_with("ocr:0.2,counting:0.5", "mini-v1:mixed:x"))
    with pytest.raises(Rejected, match="weights sum to 1.4, over 1"):
        check_known(_bundle_manifest_with("ocr:0.7,counting:0.7", "mini-v1:mixed:x"))
