"""EgoTempo: the release read as released (clip ids with hyphenated uids and negative starts,
pre-trimmed and full-video media decoded by seeking, missing media, malformed records), the
streams in the real runner, and the ANLS proxy on hand-computed replies."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from conftest import make_plan, run_plan
from plugins import SpyPolicy, SpyReader

from leaderboard.errors import Rejected
from leaderboard.rescore import rescore_row
from taskmem_bench.backends import openai_http
from taskmem_bench.backends.base import Backend, BackendSettings, ChatRequest, Generation
from taskmem_bench.cli import main
from taskmem_bench.datasets.base import DatasetRelease
from taskmem_bench.datasets.egotempo import Config, EgoTempoDataset, parse_clip_id
from taskmem_bench.datasets.jsonload import AnnotationError
from taskmem_bench.datasets.prepare import prepare
from taskmem_bench.media import iter_clips
from taskmem_bench.scoring import anls as proxy
from taskmem_bench.scoring.judge import JUDGE_SYSTEM, JudgeConfig, LLMJudge
from taskmem_bench.scoring.judge import prompt_hash as judge_prompt_hash
from taskmem_bench.scoring.variants import EgoTempoScoring
from taskmem_bench.taskconfig import ConfigError
from taskmem_bench.testing.releases import egotempo as fixture
from taskmem_bench.testing.releases.egotempo import DEFAULT_CLIPS, FPS, UID_A, UID_C
from taskmem_bench.testing.server import ChatServer
from taskmem_bench.testing.videos import read_index


def test_clip_ids_split_on_the_last_two_underscores() -> None:
    window = parse_clip_id(f"{UID_A}_368.4019995568589_403.56079044314106")
    assert (window.uid, window.start, window.end) == (UID_A, 368.4019995568589, 403.56079044314106)
    negative = parse_clip_id(f"{UID_C}_-0.034_2.5")
    assert (negative.uid, negative.start, negative.raw_start) == (UID_C, 0.0, -0.034)
    assert parse_clip_id("a_b_c_1_2").uid == "a_b_c"  # underscores before the window stay
    for bad in ("nounderscore", "_1_2", f"{UID_A}_x_2", f"{UID_A}_5_5", f"{UID_A}_5_4",
                f"{UID_A}_nan_4", f"{UID_A}_-3_-1", f"{UID_A}_0_inf"):
        with pytest.raises(ValueError):
            parse_clip_id(bad)


@pytest.fixture(scope="module")
def release_root(tmp_path_factory: pytest.TempPathFactory, mini_cache: Path) -> Path:
    return fixture.write_release(tmp_path_factory.mktemp("egotempo"))


@pytest.fixture(scope="module")
def release(release_root: Path) -> DatasetRelease:
    return EgoTempoDataset().load(Config(root=str(release_root)))


def _episode(release: DatasetRelease, clip_id: str):
    return next(e for e in release.episodes if e.stream.id == clip_id)


def test_one_stream_per_clip_with_its_questions_at_the_end(release: DatasetRelease) -> None:
    ids = [c.clip_id for c in DEFAULT_CLIPS]
    assert [e.stream.id for e in release.episodes] == ids[:5]  # the last has no media
    placed = {e.stream.id: (e.stream.segments[0].path.parent.name, e.stream.segments[0].file_offset,
                            e.stream.duration) for e in release.episodes}
    assert placed[ids[0]] == ("clips", 0.0, 3.0)  # pre-trimmed: the file (3 s) is the clip
    assert placed[ids[1]] == ("video_540ss", 2.35, pytest.approx(2.7))  # full video: seek
    assert placed[ids[2]] == ("video_540ss", 4.0, 3.5)  # overlaps the previous window
    assert placed[ids[3]] == ("video_540ss", 0.0, 2.5)  # -0.034 clamped to 0
    assert placed[ids[4]] == ("video_540ss", 3.0, 3.0)  # the video ends 6 s before the window
    for episode in release.episodes:
        stream = episode.stream
        assert stream.fps == FPS and stream.segments[0].t_start == 0.0
        for q in stream.questions:
            assert q.ask_time == stream.duration and q.options == ()
            assert q.scoring.kind == "open" and q.scoring.abstain_text == "Insufficient Information"
            assert q.category == q.tags["question_type"] and q.text
            assert episode.hidden[q.id].gold == episode.hidden[q.id].raw["answer"]
    first = _episode(release, ids[0])
    assert [q.id for q in first.stream.questions] == [f"{ids[0]}_0", f"{ids[0]}_1"]
    assert first.hidden[f"{ids[0]}_1"].gold == "A wiping cloth. "  # kept as released
    assert [q.id for q in _episode(release, ids[2]).stream.questions] == ["q-odd-17"]
    assert release.details["media"] == {"full_video": 4, "pre_trimmed": 1}
    assert release.details["info"] == fixture.INFO


def test_exclusions_and_irregularities_are_reported(release: DatasetRelease) -> None:
    missing = DEFAULT_CLIPS[5].clip_id
    assert sorted((s.kind, s.item_id) for s in release.skipped) == [
        ("duplicate_question_id", "egotempo_openQA.json#10"),
        ("malformed_record", "bad-clip"),
        ("malformed_record", "egotempo_openQA.json#8"),
        ("missing_media", f"{missing}_0"),
        ("missing_media", f"{missing}_1"),
    ]
    assert "answer" in next(s.reason for s in release.skipped if s.item_id.endswith("#8"))
    assert sorted((i.kind, i.item_id) for i in release.irregular) == [
        ("negative_start", DEFAULT_CLIPS[3].clip_id),
        ("window_past_media_end", DEFAULT_CLIPS[4].clip_id),
    ]
    assert list(release.files) == ["egotempo_openQA.json"]
    assert EgoTempoDataset().revision(Config(root=str(release.details["root"]))) == release.revision


@pytest.mark.parametrize("index", range(5))
def test_windows_decode_the_right_frames(release: DatasetRelease, index: int) -> None:
    """Pixel codes: a pre-trimmed clip shows its own frames from 0; a full video shows the
    frames of the window, reached by seeking to a point between keyframes."""
    clip = DEFAULT_CLIPS[index]
    stream = _episode(release, clip.clip_id).stream
    offset = stream.segments[0].file_offset
    frames = [(f, t) for c in iter_clips(stream, clip_seconds=10, sample_fps=FPS)
              for f, t in zip(c.frames, c.timestamps)]
    codes = [read_index(f) for f, _ in frames]
    assert codes == [round((t + offset) * FPS) for _, t in frames]
    assert codes == list(range(codes[0], codes[0] + len(codes)))  # every frame, in order
    first = 0 if clip.media == "pre_trimmed" else max(0, round(float(clip.start) * FPS + 0.4999))
    assert codes[0] == first and frames[-1][1] < stream.duration


def test_streams_in_the_runner_answer_at_clip_end(release: DatasetRelease, tmp_path: Path,
                                                  tiny_text_model: Path) -> None:
    policy = SpyPolicy()
    reader = SpyReader(log=policy.log)
    judge = LLMJudge(JudgeConfig(backend="transformers", model=str(tiny_text_model),
                                 max_new_tokens=4))
    run_plan(make_plan(SpyPolicy, SpyReader), release, tmp_path, policy=policy, reader=reader,
             judge=judge)
    answered = [item for kind, item in policy.log if kind == "answer"]
    assert len(answered) == 6
    ends = {e.stream.id: e.stream.duration for e in release.episodes}
    for request in answered:
        assert request.answer_format == "open" and request.options == ()
        assert request.memory.t == ends[request.memory.stream_id]
        assert request.memory.entries  # the whole clip is remembered


def test_open_answers_need_a_judge(release: DatasetRelease, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match="need an LLM judge"):
        run_plan(make_plan(SpyPolicy, SpyReader), release, tmp_path)
    assert main(["run", "--task", "egotempo_stream", "--policy", "blind", "--set",
                 "root=/nowhere", "--out", str(tmp_path)]) == 2
    assert "--set judge.model" in capsys.readouterr().err
    # a bare key only the judge has reaches nothing, so it is refused, with several policies too
    assert main(["run", "--task", "egotempo_stream", "--policy", "blind,subtitles", "--reader",
                 "cpu", "--set", "max_new_tokens=5", "--set", "root=/nowhere", "--out",
                 str(tmp_path)]) == 2
    assert "unknown --set key 'max_new_tokens'" in capsys.readouterr().err


class ScriptedChat(Backend):
    """Test double for hosted reader and judge models (a paid API here) behind the loopback
    server: the reader's reply is scripted per question, the judge's per candidate answer."""

    name = "scripted"
    READER = {
        "What does the person pick up first?": "It is the spray.\nAnswer: The oil remover spray.",
        "What happens after rubbing hands?": "Answer: Insufficient Information",
        "How many times does the person stir?": "Answer: Twice.",
        "Where is the knife?": "Answer: On the board",
        "What will the person do next?": "",
        "How many cups are on the table?": "Answer: Two cups.",
    }
    JUDGE = {
        "The oil remover spray.": '{"pred": "correct", "score": 5}',
        "Twice.": "<think>2 is not 3</think>{'pred': 'incorrect', 'score': 1}",
        "On the board": "Looks fine to me.",
        "Two cups.": 'Same count. {"pred": "correct", "score": 4}',
    }

    def __init__(self) -> None:
        super().__init__(BackendSettings(backend="scripted", model="hosted"))

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        replies = []
        for request in requests:
            system, prompt = request.messages[0].content[0].text, request.messages[-1].content[0].text
            if system == JUDGE_SYSTEM:
                answer = re.search(r"^Candidate answer: (.*)$", prompt, re.MULTILINE).group(1)
                replies.append(self.JUDGE[answer])
            else:
                replies.append(next(r for q, r in self.READER.items() if q in prompt))
        return [Generation(r, "stop") for r in replies]


def test_judged_run_counts_every_judgment(release_root: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole EgoTempo path over real HTTP: abstention and an empty answer never reach the
    judge; judged answers are as correct as the judge says; an unparseable judgment and, in a
    second run, an unreachable judge count as wrong and are counted, never dropped, and a
    resume once the judge is back judges those streams again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        judge_port = sock.getsockname()[1]  # free now; the judge server comes up here later
    with ChatServer(ScriptedChat()) as server:
        def run(name: str, judge_url: str, *more: str) -> int:
            return main(["run", "--task", "egotempo_stream", "--policy", "blind",
                         "--set", f"root={release_root}", "--set", "backend=openai",
                         "--set", "model=hosted", "--set", f"base_url={server.url}",
                         "--set", f"response_cache_dir={tmp_path / name / 'cache'}",
                         "--set", "judge.backend=openai", "--set", "judge.model=hosted",
                         "--set", f"judge.base_url={judge_url}", "--set", "judge.max_retries=0",
                         "--set", f"judge.response_cache_dir={tmp_path / name / 'judge-cache'}",
                         "--out", str(tmp_path / name), *more])

        assert run("ok", server.url) == 0
        down_url = f"http://127.0.0.1:{judge_port}/v1"
        capsys.readouterr()
        assert run("down", down_url) == 1  # judge errors make the run exit 1, saying so
        assert "4 answers could not be judged" in " ".join(capsys.readouterr().err.split())
        down_dir = tmp_path / "down" / "egotempo_stream" / "blind"
        down = pl.read_parquet(down_dir / "rows.parquet")
        down_summary = json.loads((down_dir / "summary.json").read_text())
        # one process here: the backend that found the judge down waits out its cool-down
        monkeypatch.setattr(openai_http, "SERVER_DOWN_COOL_DOWN_S", 0.0)
        with ChatServer(ScriptedChat(), port=judge_port):
            assert run("down", down_url, "--resume") == 0
    run_dir = tmp_path / "ok" / "egotempo_stream" / "blind"
    rows = pl.read_parquet(run_dir / "rows.parquet").sort("question_id")
    by_q = {r["question"]: r for r in rows.iter_rows(named=True)}
    assert {q: by_q[q]["extraction"] for q in ScriptedChat.READER} == {
        "What does the person pick up first?": "judged",
        "What happens after rubbing hands?": "abstained",
        "How many times does the person stir?": "judged",
        "Where is the knife?": "unparseable",
        "What will the person do next?": "no_answer",
        "How many cups are on the table?": "judged",
    }
    assert sorted(q for q, r in by_q.items() if r["correct"]) == [
        "How many cups are on the table?", "What does the person pick up first?"]
    assert by_q["How many cups are on the table?"]["judge_score"] == 4
    assert by_q["What happens after rubbing hands?"]["judge_output"] is None
    assert set(rows["verdict_by"]) == {"llm_judge"}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["n"], summary["correct"], summary["abstained"], summary["parse_failures"]) == \
        (6, 2, 1, 1)
    assert summary["acc"] == pytest.approx(2 / 6) and summary["cov"] == pytest.approx(5 / 6)
    judge = summary["scoring"]["variants"]["llm_judge"]
    assert (judge["judged"], judge["unparseable"], judge["judge_error"]) == (3, 1, 0)
    assert judge["mean_score"] == pytest.approx((5 + 1 + 4) / 3, abs=1e-4)
    assert summary["scoring"]["variants"]["anls"] == json.loads(json.dumps(proxy.score_rows(rows)))
    assert [json.loads(v)["anls"] for v in rows["variants"]] == \
        [proxy.open_proxy(r, g).anls for r, g in zip(rows["raw_output"], rows["gold"])]
    capsys.readouterr()
    assert main(["report", str(run_dir), "--format", "json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert (record["anls"], record["judge_failed"]) == (summary["scoring"]["variants"]["anls"]["anls"], 1)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["judge"]["prompt_hash"] == judge_prompt_hash()
    assert manifest["judge"]["model"] == {"backend": "openai", "model": "hosted"}
    for row in rows.iter_rows(named=True):  # the leaderboard's re-scoring agrees with each row
        rescore_row(row, EgoTempoScoring())
    wrong = by_q["How many times does the person stir?"]
    tampered = dict(wrong, judge_output='{"pred": "correct", "score": 5}', judge_score=5)
    with pytest.raises(Rejected, match="the row says correct = False"):
        rescore_row(tampered, EgoTempoScoring())
    with pytest.raises(Rejected, match="judge_score 5 is not the score in its judge reply"):
        rescore_row(dict(wrong, judge_score=5), EgoTempoScoring())

    assert sorted(down["extraction"]) == sorted(
        ["abstained", "no_answer", "judge_error", "judge_error", "judge_error", "judge_error"])
    assert not down["correct"].any() and down["failure"].is_null().all()
    assert all("Error" in e for e in down.filter(pl.col("extraction") == "judge_error")["error"])
    assert down_summary["scoring"]["variants"]["llm_judge"]["judge_error"] == 4
    assert down_summary["n"] == 6 and down_summary["acc"] == 0.0
    resumed = pl.read_parquet(down_dir / "rows.parquet").sort("question_id")
    assert resumed.select("question_id", "extraction", "correct").equals(
        rows.select("question_id", "extraction", "correct"))


def test_blind_run_with_a_tiny_reader_and_judge(release_root: Path, tmp_path: Path,
                                               tiny_text_model: Path) -> None:
    """``taskmem-bench run --task egotempo_stream --policy blind`` with the paper reader and
    the judge both on a local (tiny, random) model through transformers: every question gets a
    row, each non-abstained answer a judgment, and the manifest names the judge and its own
    decoding settings."""
    out = tmp_path / "runs"
    assert main(["run", "--task", "egotempo_stream", "--policy", "blind", "--set",
                 f"root={release_root}", "--set", "backend=transformers", "--set",
                 f"model={tiny_text_model}", "--set", "max_new_tokens=6", "--set",
                 "temperature=0.5", "--set", "judge.backend=transformers", "--set",
                 f"judge.model={tiny_text_model}", "--set", "judge.max_new_tokens=5",
                 "--out", str(out)]) == 0
    run_dir = out / "egotempo_stream" / "blind"
    rows = pl.read_parquet(run_dir / "rows.parquet")
    assert rows.height == 6 and rows["failure"].is_null().all()
    summary = json.loads((run_dir / "summary.json").read_text())
    counts = summary["scoring"]["variants"]["llm_judge"]
    judged_rows = rows.filter(pl.col("extraction").is_in(["judged", "unparseable", "judge_error"]))
    assert counts["judged"] + counts["unparseable"] + counts["judge_error"] == judged_rows.height
    assert judged_rows["judge_output"].is_not_null().all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["judge"]["config"]["model"] == str(tiny_text_model)
    # no bare key reaches the judge: it is configured as judge.* only
    assert (manifest["reader"]["config"]["temperature"], manifest["judge"]["config"]["temperature"],
            manifest["judge"]["config"]["max_new_tokens"]) == (0.5, 0.0, 5)
    assert manifest["judge"]["model"] == manifest["reader"]["model"]  # same files, same identity


def test_prepare_reports_the_exact_counts(release_root: Path) -> None:
    report = prepare(EgoTempoDataset(), Config(root=str(release_root)))
    assert (report.streams, report.questions, report.media_files) == (5, 6, 4)
    assert report.hours == pytest.approx((3.0 + 2.7 + 3.5 + 2.5 + 3.0) / 3600)
    assert [m["id"] for m in report.missing_media] == [f"{DEFAULT_CLIPS[5].clip_id}_{k}"
                                                       for k in (0, 1)]
    assert report.irregular == {"negative_start": [DEFAULT_CLIPS[3].clip_id],
                                "window_past_media_end": [DEFAULT_CLIPS[4].clip_id]}


def test_malformed_json_names_the_file_and_the_record(tmp_path: Path, mini_cache: Path) -> None:
    root = fixture.write_release(tmp_path, clips=DEFAULT_CLIPS[5:], extra_records=())
    path = root / fixture.ANNOTATIONS
    text = path.read_text()
    second = text.index('"question_id"', text.index('"question_id"') + 1)
    path.write_text(text[:second] + '"question_id" "oops", ' + text[second:])
    with pytest.raises(AnnotationError, match=r"egotempo_openQA\.json: malformed JSON in record "
                                              r"1 \(counting from 0\) at line \d+ column \d+"):
        EgoTempoDataset().load(Config(root=str(root)))
    path.write_text(json.dumps({"info": {}, "questions": []}))
    with pytest.raises(AnnotationError, match="annotations"):
        EgoTempoDataset().load(Config(root=str(root)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no egotempo_openQA.json"):
        EgoTempoDataset().load(Config(root=str(tmp_path / "empty")))


def test_a_pre_trimmed_clip_is_preferred_to_the_full_video(tmp_path: Path,
                                                          mini_cache: Path) -> None:
    both = (dataclasses.replace(DEFAULT_CLIPS[1], media="pre_trimmed", video_seconds=3),
            DEFAULT_CLIPS[1])
    root = fixture.write_release(tmp_path, clips=both[:1], extra_records=())
    fixture.write_release(tmp_path, clips=both[1:], extra_records=())
    (segment,) = EgoTempoDataset().load(Config(root=str(root))).episodes[0].stream.segments
    assert segment.path.parent.name == "clips" and segment.file_offset == 0.0


# --------------------------------------------------------------------------------------------
# ANLS


def test_levenshtein() -> None:
    assert proxy.levenshtein("kitten", "sitting") == 3
    assert proxy.levenshtein("", "abc") == proxy.levenshtein("abc", "") == 3
    assert proxy.levenshtein("flaw", "lawn") == 2


def test_anls_as_lmms_eval_computes_it() -> None:
    # one edit over the longer raw string (22 characters)
    one_edit = proxy.anls("the oil remover spray", ["The oil remover spray."])
    assert one_edit == pytest.approx(1 - 1 / 22)
    # the raw gold keeps its trailing space in the denominator (16, not 15): lmms-eval's quirk
    assert proxy.anls("a wiping cloth", ["A wiping cloth. "]) == pytest.approx(1 - 1 / 16)
    # whitespace runs and case do not count as edits
    assert proxy.anls("  Two   CUPS ", ["two cups"]) == 1.0
    # exactly 0.5 is kept, just below is 0
    assert proxy.anls("abxy", ["abcd"]) == 0.5
    assert proxy.anls("axyz", ["abcd"]) == 0.0
    assert proxy.anls("knife", ["On the cutting board."]) == 0.0
    # the best reference counts
    assert proxy.anls("cloth", ["a rag", "cloth"]) == 1.0
    assert proxy.anls("", [""]) == 1.0
    with pytest.raises(ValueError):
        proxy.anls("x", [])


def test_abstention_and_final_answer() -> None:
    for said in ("Insufficient Information", "insufficient information.", "**INSUFFICIENT "
                 "INFORMATION**", "Insufficient-information!"):
        assert proxy.is_abstention(said)
    assert not proxy.is_abstention("Insufficient information about the knife")
    assert proxy.final_answer("<think>hmm</think>The memory shows it.\nAnswer: A cloth.") == \
        "A cloth."
    assert proxy.final_answer("Reasoning...\n**Answer:** two cups\nAnswer: three cups") == \
        "three cups"
    assert proxy.final_answer("  Just a cloth  ") == "Just a cloth"


def test_score_rows_reproduces_hand_computed_anls() -> None:
    rows = pl.DataFrame({
        "raw_output": ["Answer: the oil remover spray", "Answer: Insufficient Information.",
                       "I think a knife.", "Answer: a wiping cloth", None],
        "gold": ["The oil remover spray.", "Three times.", "On the cutting board.",
                 "A wiping cloth. ", "Open the fridge."],
        "failure": [None, None, None, None, "reader_error"],
        "abstained": [False, True, False, False, None],
        "tags": [json.dumps({"question_type": t}) for t in
                 ("object-specific action", "counting actions", "locating object",
                  "object-specific action", "future action prediction")],
    })
    result = proxy.score_rows(rows)
    total = (1 - 1 / 22) + 0 + 0 + (1 - 1 / 16) + 0
    assert (result["n"], result["abstained"], result["failed"]) == (5, 1, 1)
    assert result["anls"] == pytest.approx(total / 5)
    assert result["cov"] == pytest.approx(4 / 5)
    assert result["anls_prec"] == pytest.approx(total / 4)
    osa = result["by_question_type"]["object-specific action"]
    assert osa["n"] == 2 and osa["anls"] == pytest.approx(((1 - 1 / 22) + (1 - 1 / 16)) / 2)
    assert result["by_question_type"]["counting actions"]["cov"] == 0.0


def test_the_anls_proxy_counts_the_abstentions_the_verdicts_counted() -> None:
    """A question with its own abstain text: the proxy follows each row's verdict, not the
    default phrase."""
    rows = pl.DataFrame({
        "raw_output": ["Answer: Cannot tell", "Answer: Insufficient Information"],
        "gold": ["Two cups.", "Insufficient Information"],
        "failure": [None, None],
        "abstained": [True, False],
        "tags": [json.dumps({"question_type": "counting actions"})] * 2,
    })
    result = proxy.score_rows(rows)
    assert (result["abstained"], result["cov"]) == (1, 0.5)
    assert result["anls"] == pytest.approx(1 / 2)  # the second reply matches its gold
