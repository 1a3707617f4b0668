"""What Phase Two has to choose from: the kinds of sentences a memorizer samples for a clip with
the supplement prompt, and how many of them are true.

Walks development episodes (a training seed, never an evaluation one) the way the policy walks
a stream (the window holds the greedy descriptions), and at each clip samples ``--samples``
candidates with the supplement (the episode's first 5 questions) as Phase Two does. Prints,
per claimed kind (``taskmem.claims``), how many sentences were written and the share true of
the window's simulator facts (used here to measure only, never by the policy).

    python benchmarks/taskmem_candidates.py [--environment count_ocr] [--episodes 2]
        [--samples 8] [--temperature 0.6] [--model package:taskmem/checkpoints/mini]
"""

from __future__ import annotations

import argparse
from collections import Counter

from taskmem.candidates import chat_request, supplement_line
from taskmem.claims import claimed_kind
from taskmem.minidata import split_samples, training_config
from taskmem.policy import SHIPPED_MINI
from taskmem.protocol import FrameSpec, parse_reply, sentences, within_budget
from taskmem.streams import Window
from taskmem_bench.backends import BackendSettings, Sampling, get_backend
from taskmem_bench.backends.packaged import resolve
from taskmem_bench.datasets.mini.dataset import MiniDataset
from taskmem_bench.model_policy import request_seed
from taskmem_bench.schema import TaskNotice

BUDGET = 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environment", default="count_ocr")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--model", default=SHIPPED_MINI)
    args = parser.parse_args()

    config = training_config("dev", args.episodes, args.environment)
    release = MiniDataset().load(config)
    questions = [q for e in release.episodes for q in e.stream.questions][:5]
    supplement = [supplement_line(TaskNotice(q.stream_id, q.id, q.ask_time, q.text, q.options,
                                             q.category)) for q in questions]
    backend = get_backend(BackendSettings(model=resolve(args.model)))
    written, true, replies, parsed = Counter(), Counter(), 0, 0
    for samples in split_samples(config):
        window = Window(50.0, FrameSpec())
        for sample in samples:
            clip = sample.clip
            new = window.new_frames(clip)
            candidates = window.prompt(clip, new, BUDGET, supplement)
            requests = [chat_request(candidates, Sampling(
                max_new_tokens=48, temperature=args.temperature, top_p=0.95, top_k=20,
                seed=request_seed(0, clip.stream_id, clip.index, f"candidate-{k}")))
                for k in range(args.samples)]
            requests.append(chat_request(window.prompt(clip, new, BUDGET),
                                         Sampling(max_new_tokens=48)))
            generations = backend.generate(requests)
            facts = {f.text for f in sample.facts_between(clip.t_end - 50.0, clip.t_end)}
            for generation in generations[:-1]:
                replies += 1
                reply = parse_reply(generation.text)
                if not reply.ok:
                    continue
                parsed += 1
                for sentence in sentences(within_budget(reply.description, BUDGET)):
                    kind = claimed_kind(sentence)
                    written[kind] += 1
                    true[kind] += sentence in facts
            greedy = parse_reply(generations[-1].text).description or ""
            window = window.advanced(clip, new, within_budget(greedy, BUDGET))
    print(f"{args.environment}, {args.episodes} development episodes, {args.samples} samples per "
          f"clip at temperature {args.temperature}: {parsed} of {replies} replies parsed")
    for kind, count in written.most_common():
        print(f"  {kind:10} {count:5} sentences, {100 * true[kind] / count:5.1f} % true")


if __name__ == "__main__":
    main()
