"""Multiple-choice questions generated from an episode's facts, online and with unique answers.

Each template states, per option, the *claims* (fact sentences) that would make the option true.
An option is true exactly when one of its claims is the text of a fact that had begun by the ask
time; a question is kept only if exactly one option is true. Temporal-order questions are the
exception: all their options are facts, and the answer is the earliest (or latest) of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskmem_bench.datasets.mini import sentences as say
from taskmem_bench.datasets.mini.mix import CATEGORIES, TaskMix
from taskmem_bench.datasets.mini.vocab import (
    COLOURS, GESTURES, ITEM_ZONES, PATTERNS, SHAPES, SIGN_WORDS, SPEAKERS, Item, place_phrase,
    topic_named,
)
from taskmem_bench.datasets.mini.world import CLIP_SECONDS, World, WorldFact
from taskmem_bench.schema import ANSWER_LABELS, Hidden, Question

QUESTION_SECONDS = 15.0  # one question per this much stream, on average
FIRST_ASK = 15.0
MIN_DELAY = 4.0  # the evidence ends at least this long before the question is asked
OPTIONS = 4
ORDER_EVENTS = ("appear", "disappear", "pick", "place", "gesture", "speech")


@dataclass(frozen=True)
class Draft:
    """A question before its options are shuffled; ``answer`` indexes ``options``."""

    category: str
    template: str
    text: str
    options: tuple[str, ...]
    claims: tuple[tuple[str, ...], ...]
    evidence: tuple[int, ...]
    answer: int = 0
    order: str = ""


@dataclass(frozen=True)
class Context:
    """What a template may use: the facts, the ask time and an RNG."""

    facts: tuple[WorldFact, ...]
    ask: float
    rng: np.random.Generator

    @property
    def known(self) -> frozenset[str]:
        """Texts of the facts begun by the ask time: what may make an option true."""
        return frozenset(f.text for f in self.facts if f.span.start <= self.ask)

    def values(self, name: str, *events: str) -> list[Any]:
        """The distinct values of slot ``name`` in facts of the given events, in episode order."""
        seen: dict[Any, None] = {}
        for fact in self.facts:
            if fact.event in events:
                seen.setdefault(fact.args[name])
        return list(seen)

    def shuffled(self, values: Iterable[Any]) -> list[Any]:
        values = list(values)
        return [values[i] for i in self.rng.permutation(len(values))]


Claims = Callable[[Any], tuple[str, ...]]


def _draft(ctx: Context, category: str, template: str, text: str, gold: Any,
           pool: Sequence[Any], claims: Claims, label: Callable[[Any], str], evidence: int,
           avoid: frozenset[Any] = frozenset()) -> Draft | None:
    """The gold value plus the first three pool values that are false at the ask time."""
    known = ctx.known
    chosen = [gold]
    for value in pool:
        if len(chosen) == OPTIONS:
            break
        if value in chosen or value in avoid or any(c in known for c in claims(value)):
            continue
        chosen.append(value)
    if len(chosen) < OPTIONS:
        return None
    return Draft(category, template, text, tuple(label(v) for v in chosen),
                 tuple(claims(v) for v in chosen), (evidence,))


def _items(ctx: Context) -> list[Item]:
    """Objects seen in the episode first (plausible distractors), then the whole vocabulary."""
    seen = ctx.shuffled(ctx.values("item", "appear"))
    return seen + ctx.shuffled(Item(c, s) for c in COLOURS for s in SHAPES)


def _name(item: Item) -> str:
    return item.name


# -- templates: (ctx, index of the evidence fact) -> Draft | None ---------------------------------

def appeared_at(ctx: Context, i: int) -> Draft | None:
    item, zone = ctx.facts[i].args["item"], ctx.facts[i].args["zone"]
    return _draft(
        ctx, "object_recognition", "appeared_at", f"Which of these appears {place_phrase(zone)}?",
        item, _items(ctx), lambda x: (say.appears(x, zone), say.person_does(zone, say.places(x))),
        _name, i)


def vanished_from(ctx: Context, i: int) -> Draft | None:
    item, zone = ctx.facts[i].args["item"], ctx.facts[i].args["zone"]
    return _draft(
        ctx, "object_recognition", "vanished_from", f"Which of these disappears from the {zone}?",
        item, _items(ctx),
        lambda x: (say.disappears(x, zone), say.person_does(zone, say.picks_up(x))), _name, i)


def pattern_of(ctx: Context, i: int) -> Draft | None:
    item, pattern = ctx.facts[i].args["item"], ctx.facts[i].args["pattern"]
    return _draft(
        ctx, "attribute_perception", "pattern_of", f"What pattern does the {item.name} have?",
        pattern, ctx.shuffled(PATTERNS), lambda p: (say.has_pattern(item, p),), str, i)


def count_of(ctx: Context, i: int) -> Draft | None:
    args = ctx.facts[i].args
    count, item, zone = args["count"], args["item"], args["zone"]
    first = int(ctx.rng.integers(max(1, count - OPTIONS + 1), min(count, 9 - OPTIONS + 1) + 1))
    window = [n for n in range(first, first + OPTIONS) if n != count]
    return _draft(
        ctx, "counting", "count_of", f"How many {item.name}s were {place_phrase(zone)}?",
        count, window, lambda n: (say.there_are(n, item, zone),), str, i)


def sign_word(ctx: Context, i: int) -> Draft | None:
    pool = ctx.shuffled(ctx.values("word", "sign")) + ctx.shuffled(SIGN_WORDS)
    return _draft(
        ctx, "ocr", "sign_word", "Which of these words does the sign show?",
        ctx.facts[i].args["word"], pool, lambda w: (say.sign_shows(w),), str, i)


def action_at(ctx: Context, i: int) -> Draft | None:
    zone, doing = ctx.facts[i].args["zone"], ctx.facts[i].args["doing"]
    items = _items(ctx)[:4]
    pool = ctx.shuffled(ctx.values("doing", "pick", "place", "gesture")) + ctx.shuffled(
        [*GESTURES, *map(say.picks_up, items), *map(say.places, items)])
    return _draft(
        ctx, "action_recognition", "action_at",
        f"What does the person do {say.person_place(zone)}?",
        doing, pool, lambda d: (say.person_does(zone, d),), str, i)


def side_of(ctx: Context, i: int) -> Draft | None:
    args = ctx.facts[i].args
    item, side, other = args["item"], args["side"], args["other"]
    opposite = "right" if side == "left" else "left"
    # Objects ever stated beside ``other`` share every word with the true claim, so a word-level
    # reader could not tell "X is left of Y" from "Y is left of X"; keep them out of the options.
    related = frozenset(
        f.args[key] for f in ctx.facts if f.event == "relation" and f.span.start <= ctx.ask
        and other in (f.args["item"], f.args["other"]) for key in ("item", "other"))
    return _draft(
        ctx, "spatial", "side_of", f"Which of these was {side} of the {other.name}?", item,
        _items(ctx), lambda x: (say.beside(x, side, other), say.beside(other, opposite, x)),
        _name, i, avoid=related - {item} | {other})


def _zones(ctx: Context) -> list[str]:
    return ctx.shuffled(ITEM_ZONES)


def appear_zone(ctx: Context, i: int) -> Draft | None:
    item, zone = ctx.facts[i].args["item"], ctx.facts[i].args["zone"]
    return _draft(
        ctx, "spatial", "appear_zone", f"Where does the {item.name} appear?", zone, _zones(ctx),
        lambda z: (say.appears(item, z),), place_phrase, i)


def place_zone(ctx: Context, i: int) -> Draft | None:
    item, zone = ctx.facts[i].args["item"], ctx.facts[i].args["zone"]
    return _draft(
        ctx, "spatial", "place_zone", f"Where does the person place the {item.name}?", zone,
        _zones(ctx), lambda z: (say.person_does(z, say.places(item)),), place_phrase, i)


def said_value(ctx: Context, i: int) -> Draft | None:
    args = ctx.facts[i].args
    topic, speaker = topic_named(args["topic"]), args["speaker"]
    return _draft(
        ctx, "speech", "said_value", topic.question.format(speaker=speaker), args["value"],
        ctx.shuffled(topic.values), lambda v: (say.says(speaker, topic.say(v)),), str, i)


def said_by(ctx: Context, i: int) -> Draft | None:
    args = ctx.facts[i].args
    statement = topic_named(args["topic"]).say(args["value"])
    return _draft(
        ctx, "speech", "said_by", f"Who says {statement}?", args["speaker"],
        ctx.shuffled(SPEAKERS), lambda s: (say.says(s, statement),), str, i)


def order(ctx: Context, i: int) -> Draft | None:
    """Four events from four different clips; which came first (or last)?"""
    texts = [f.text for f in ctx.facts if f.span.start <= ctx.ask]
    usable = [
        k for k, f in enumerate(ctx.facts)
        if f.event in ORDER_EVENTS and f.span.end <= ctx.ask - MIN_DELAY
        and texts.count(f.text) == 1
    ]
    if i not in usable:
        return None
    chosen, clips = [i], {_clip(ctx.facts[i])}
    for k in ctx.shuffled(usable):
        if len(chosen) < OPTIONS and _clip(ctx.facts[k]) not in clips:
            chosen.append(k)
            clips.add(_clip(ctx.facts[k]))
    if len(chosen) < OPTIONS:
        return None
    direction = "first" if ctx.rng.random() < 0.5 else "last"
    starts = [ctx.facts[k].span.start for k in chosen]
    answer = int(np.argmin(starts) if direction == "first" else np.argmax(starts))
    return Draft(
        "temporal_order", f"order_{direction}", f"Which of these happens {direction}?",
        tuple(ctx.facts[k].text.rstrip(".") for k in chosen),
        tuple((ctx.facts[k].text,) for k in chosen), tuple(chosen), answer, direction)


def _clip(fact: WorldFact) -> int:
    return int(fact.span.start // CLIP_SECONDS)


Template = Callable[[Context, int], "Draft | None"]
TEMPLATES: dict[str, tuple[tuple[Template, tuple[str, ...]], ...]] = {
    "object_recognition": ((appeared_at, ("appear",)), (vanished_from, ("disappear",))),
    "attribute_perception": ((pattern_of, ("pattern",)),),
    "counting": ((count_of, ("count",)),),
    "ocr": ((sign_word, ("sign",)),),
    "action_recognition": ((action_at, ("pick", "place", "gesture")),),
    "temporal_order": ((order, ORDER_EVENTS),),
    "spatial": ((side_of, ("relation",)), (appear_zone, ("appear",)), (place_zone, ("place",))),
    "speech": ((said_value, ("speech",)), (said_by, ("speech",))),
}


def is_unique(draft: Draft, ctx: Context) -> bool:
    """Exactly the answer is true at the ask time."""
    if draft.order:
        starts = [ctx.facts[k].span.start for k in draft.evidence]
        return len(set(starts)) == len(starts)
    known = ctx.known
    true = [k for k, claims in enumerate(draft.claims) if any(c in known for c in claims)]
    return true == [draft.answer]


def _try(category: str, ctx: Context, used: set[tuple[str, int]]) -> Draft | None:
    for template, events in ctx.shuffled(TEMPLATES[category]):
        candidates = [
            k for k, f in enumerate(ctx.facts)
            if f.event in events and f.span.end <= ctx.ask - MIN_DELAY
            and (template.__name__, k) not in used
        ]
        for k in ctx.shuffled(candidates):
            draft = template(ctx, k)
            if draft is not None and is_unique(draft, ctx):
                used.add((template.__name__, k))
                return draft
    return None


def ask_times(duration: float, rng: np.random.Generator) -> list[float]:
    """One ask time in each of equal windows after ``FIRST_ASK``: questions all along the stream."""
    n = max(1, round(duration / QUESTION_SECONDS))
    edges = np.linspace(min(FIRST_ASK, duration / 2), duration, n + 1)
    return [round(float(rng.uniform(lo, hi)), 1) for lo, hi in zip(edges[:-1], edges[1:])]


def make_questions(world: World, mix: TaskMix, stream_id: str,
                   rng: np.random.Generator) -> list[tuple[Question, Hidden]]:
    """Questions for one episode, drawn from the environment's task mix: at each ask time the
    categories are tried in a weighted random order; a category of weight 0 is never asked."""
    asked = [k for k, weight in enumerate(mix.weights) if weight > 0]
    used: set[tuple[str, int]] = set()
    made: list[tuple[Question, Hidden]] = []
    for ask in ask_times(world.duration, rng):
        ctx = Context(world.facts, ask, rng)
        preference = rng.choice(len(asked), size=len(asked), replace=False,
                                p=[mix.weights[k] for k in asked])
        for category in (CATEGORIES[asked[k]] for k in preference):
            draft = _try(category, ctx, used)
            if draft is not None:
                made.append(_finish(draft, ctx, f"{stream_id}-q{len(made):02d}", stream_id,
                                    mix.name))
                break
    return made


def _finish(draft: Draft, ctx: Context, question_id: str, stream_id: str,
            environment: str) -> tuple[Question, Hidden]:
    """Shuffle the options and split the question from its gold record."""
    order = [int(k) for k in ctx.rng.permutation(OPTIONS)]
    options = tuple(draft.options[k] for k in order)
    gold = ANSWER_LABELS[order.index(draft.answer)]
    evidence_end = max(ctx.facts[k].span.end for k in draft.evidence)
    question = Question(
        id=question_id, stream_id=stream_id, ask_time=ctx.ask, text=draft.text, options=options,
        category=draft.category, tags={"template": draft.template, "environment": environment},
        evidence=tuple(ctx.facts[k].span for k in draft.evidence),
    )
    hidden = Hidden(
        question_id=question_id, gold=gold, hints={"fact_ids": draft.evidence},
        raw={
            "template": draft.template,
            "answer": draft.options[draft.answer],
            "claims": {options[k]: draft.claims[order[k]] for k in range(OPTIONS)},
            "order": draft.order,
            "delay": round(ctx.ask - evidence_end, 2),
        },
    )
    return question, hidden
