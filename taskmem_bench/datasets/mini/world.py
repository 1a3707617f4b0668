"""The event simulation of one episode: what happens when, as render tracks and atomic facts.

Everything is drawn from one seeded generator, so an episode is a pure function of its seed.
Times live on a 0.05 s grid, and no fact ends exactly on a 10 s clip boundary, so which clip a
fact belongs to is never ambiguous.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskmem_bench.datasets.mini import sentences as say
from taskmem_bench.datasets.mini.layout import (
    SLOTS, START, STAND, WALK_SPEED, ZONE_RECTS, Point, distance,
)
from taskmem_bench.datasets.mini.vocab import (
    COLOURS, GESTURES, GROUP_ZONE, ITEM_ZONES, PATTERNS, PERSON_ZONES, SHAPES, SIGN_WORDS,
    SPEAKERS, TOPICS, Item,
)
from taskmem_bench.schema import Span, TextEvent

CLIP_SECONDS = 10.0
END_MARGIN = 0.5  # every event is over this long before the episode ends
GROUP_IDENTITIES = 8  # identities kept apart for counting groups, so a name never means both


@dataclass(frozen=True)
class WorldFact:
    """A fact plus the structured slots that question templates select on."""

    span: Span
    kind: str
    event: str
    text: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resting:
    """An object lying at a place from ``t0`` to ``t1``; it pops in or out if it appeared or
    disappeared there (rather than being put down or picked up)."""

    item: Item
    pattern: str
    pos: Point
    t0: float
    t1: float
    grow: bool
    shrink: bool


@dataclass(frozen=True)
class Carried:
    item: Item
    pattern: str
    t0: float
    t1: float


@dataclass(frozen=True)
class Walk:
    t0: float
    t1: float
    p0: Point
    p1: Point


@dataclass(frozen=True)
class Act:
    """The person acting at a zone: ``reach`` (pick up / put down at ``target``) or a gesture
    (facing ``target``, the zone's centre)."""

    kind: str
    zone: str
    t0: float
    t1: float
    target: Point


@dataclass(frozen=True)
class SignWord:
    word: str
    t0: float
    t1: float


@dataclass(frozen=True)
class Group:
    item: Item
    count: int
    t0: float
    t1: float


@dataclass(frozen=True)
class World:
    duration: float
    facts: tuple[WorldFact, ...]
    resting: tuple[Resting, ...]
    carried: tuple[Carried, ...]
    walks: tuple[Walk, ...]
    acts: tuple[Act, ...]
    signs: tuple[SignWord, ...]
    groups: tuple[Group, ...]
    speech: tuple[TextEvent, ...]

    @property
    def digest(self) -> str:
        """Names the exact event timeline, so cached media can never silently go stale."""
        return hashlib.sha256(repr(self).encode()).hexdigest()


def grid(t: float) -> float:
    return round(t * 20) / 20


def off_boundary(t: float) -> float:
    """``t`` on the grid, nudged off a clip boundary."""
    t = grid(t)
    return grid(t + 0.15) if round(t * 20) % round(CLIP_SECONDS * 20) == 0 else t


@dataclass
class _Stay:
    """Mutable occupancy of a slot while simulating; frozen into :class:`Resting` at the end."""

    item: Item
    zone: str
    slot: int
    t0: float
    grow: bool
    t1: float | None = None
    shrink: bool = False
    claimed: bool = False


class _Simulation:
    def __init__(self, rng: np.random.Generator, duration: float) -> None:
        self.rng = rng
        self.duration = duration
        self.limit = duration - END_MARGIN
        identities = [Item(c, s) for c in COLOURS for s in SHAPES]
        order = rng.permutation(len(identities))
        self.singles = [identities[i] for i in order[:-GROUP_IDENTITIES]]
        self.group_items = [identities[i] for i in order[-GROUP_IDENTITIES:]]
        self.patterns = {item: str(rng.choice(PATTERNS)) for item in self.singles}
        self.slots: dict[tuple[str, int], _Stay | None] = {
            (zone, k): None for zone in ITEM_ZONES for k in range(len(SLOTS[zone]))
        }
        self.stays: list[_Stay] = []
        self.facts: list[WorldFact] = []
        self.carried: list[Carried] = []
        self.walks: list[Walk] = []
        self.acts: list[Act] = []
        self.queue: list[tuple[float, int, Callable[[float], None]]] = []
        self.order = itertools.count()
        self.position, self.zone = START, ""
        self.holding: tuple[Item, float] | None = None

    def uniform(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def fact(self, start: float, end: float, kind: str, event: str, text: str, **args: Any) -> None:
        self.facts.append(WorldFact(Span(start, off_boundary(end)), kind, event, text, args))

    def schedule(self, t: float, handler: Callable[[float], None]) -> None:
        if t < self.limit:
            heapq.heappush(self.queue, (grid(t), next(self.order), handler))

    def run(self) -> World:
        self.schedule(self.uniform(0.5, 2.0), self.person_turn)
        self.schedule(self.uniform(0.5, 3.0), self.spawner_turn)
        while self.queue:
            t, _, handler = heapq.heappop(self.queue)
            handler(t)
        if self.holding is not None:
            item, t0 = self.holding
            self.carried.append(Carried(item, self.patterns[item], t0, self.duration))
        signs, groups, speech = self.signs(), self.groups(), self.speech()
        return World(
            duration=self.duration,
            facts=tuple(sorted(self.facts, key=lambda f: (f.span.start, f.span.end, f.text))),
            resting=tuple(self.frozen_stays()),
            carried=tuple(self.carried),
            walks=tuple(self.walks),
            acts=tuple(self.acts),
            signs=signs,
            groups=groups,
            speech=speech,
        )

    # -- objects resting in slots ---------------------------------------------------------------

    def free_slots(self, t: float) -> list[tuple[str, int]]:
        return [
            key for key, stay in self.slots.items()
            if stay is None or (stay.t1 is not None and stay.t1 <= t)
        ]

    def settled(self, t: float, age: float) -> list[_Stay]:
        """Objects lying still since at least ``age`` seconds, that nobody is about to take."""
        return [
            s for s in self.slots.values()
            if s is not None and s.t1 is None and not s.claimed and s.t0 + age <= t
        ]

    def occupy(self, key: tuple[str, int], item: Item, t: float, grow: bool) -> _Stay:
        stay = _Stay(item, key[0], key[1], t, grow)
        self.slots[key] = stay
        self.stays.append(stay)
        return stay

    def relate(self, stay: _Stay, t: float) -> None:
        """State where the newcomer lies relative to every other object in its zone."""
        for other in self.slots.values():
            if other is None or other is stay or other.zone != stay.zone or other.t0 > t:
                continue
            if other.t1 is not None and other.t1 < t + 1.2:
                continue
            side = "left" if stay.slot < other.slot else "right"
            self.fact(t, t + 1.2, "location", "relation", say.beside(stay.item, side, other.item),
                      item=stay.item, side=side, other=other.item)

    def spawner_turn(self, t: float) -> None:
        free = self.free_slots(t)
        leaving = self.settled(t, age=1.5)
        if len(free) <= 3 and leaving:
            stay = leaving[int(self.rng.integers(len(leaving)))]
            stay.t1, stay.shrink = grid(t + 0.6), True
            self.fact(t, t + 0.6, "object", "disappear", say.disappears(stay.item, stay.zone),
                      item=stay.item, zone=stay.zone)
            t = grid(t + self.uniform(0.8, 1.6))
            free = self.free_slots(t)
        if free and self.singles and t + 1.5 < self.limit:
            key = free[int(self.rng.integers(len(free)))]
            item = self.singles.pop(0)
            stay = self.occupy(key, item, t, grow=True)
            self.fact(t, t + 1.0, "object", "appear", say.appears(item, key[0]),
                      item=item, zone=key[0])
            pattern = self.patterns[item]
            self.fact(t, t + 1.5, "attribute", "pattern", say.has_pattern(item, pattern),
                      item=item, pattern=pattern)
            self.relate(stay, t)
        self.schedule(t + self.uniform(5.0, 9.0), self.spawner_turn)

    # -- the person -----------------------------------------------------------------------------

    def walk_to(self, zone: str, t: float) -> float:
        """Walk from where the person stands to ``zone``; the arrival time."""
        target = STAND[zone]
        if self.zone == zone:
            return t
        arrive = grid(t + distance(self.position, target) / WALK_SPEED + 0.1)
        self.walks.append(Walk(t, arrive, self.position, target))
        self.position, self.zone = target, zone
        return arrive

    def person_turn(self, t: float) -> None:
        pickable = self.settled(t, age=1.0)
        free = self.free_slots(t)
        if self.holding is not None and free:
            end = self.put_down(t, free[int(self.rng.integers(len(free)))])
        elif self.holding is None and pickable and self.rng.random() < 0.55:
            end = self.pick_up(t, pickable[int(self.rng.integers(len(pickable)))])
        else:
            end = self.gesture(t)
        if end is not None:
            self.schedule(end + self.uniform(0.3, 1.2), self.person_turn)

    def reach_window(self, t: float, zone: str) -> tuple[float, float] | None:
        """Walk to ``zone`` for a reach; its start and end, or None (and no walk) if it would
        not finish before the episode ends."""
        arrive_estimate = t + distance(self.position, STAND[zone]) / WALK_SPEED + 0.1
        if arrive_estimate + 2.6 > self.limit:
            return None
        arrive = self.walk_to(zone, t)
        return arrive, off_boundary(arrive + self.uniform(1.6, 2.4))

    def pick_up(self, t: float, stay: _Stay) -> float | None:
        window = self.reach_window(t, stay.zone)
        if window is None:
            return None
        arrive, end = window
        stay.claimed, stay.t1 = True, grid((arrive + end) / 2)
        self.acts.append(Act("reach", stay.zone, arrive, end, SLOTS[stay.zone][stay.slot]))
        self.fact(arrive, end, "action", "pick",
                  say.person_does(stay.zone, say.picks_up(stay.item)),
                  item=stay.item, zone=stay.zone, doing=say.picks_up(stay.item))
        self.holding = (stay.item, stay.t1)
        return end

    def put_down(self, t: float, key: tuple[str, int]) -> float | None:
        assert self.holding is not None
        zone, slot = key
        window = self.reach_window(t, zone)
        if window is None:
            return None
        arrive, end = window
        item, held_since = self.holding
        land = grid((arrive + end) / 2)
        stay = self.occupy(key, item, land, grow=False)
        self.carried.append(Carried(item, self.patterns[item], held_since, land))
        self.holding = None
        self.acts.append(Act("reach", zone, arrive, end, SLOTS[zone][slot]))
        self.fact(arrive, end, "action", "place", say.person_does(zone, say.places(item)),
                  item=item, zone=zone, doing=say.places(item))
        self.schedule(land, lambda now: self.relate(stay, now))
        return end

    def gesture(self, t: float) -> float | None:
        zones = [z for z in PERSON_ZONES if z != self.zone]
        zone = zones[int(self.rng.integers(len(zones)))]
        kind = GESTURES[int(self.rng.integers(len(GESTURES)))]
        if t + distance(self.position, STAND[zone]) / WALK_SPEED + 3.2 > self.limit:
            return None
        arrive = self.walk_to(zone, t)
        end = off_boundary(arrive + self.uniform(2.0, 3.0))
        x0, y0, x1, y1 = ZONE_RECTS[zone]
        self.acts.append(Act(kind, zone, arrive, end, ((x0 + x1) / 2, (y0 + y1) / 2)))
        self.fact(arrive, end, "action", "gesture", say.person_does(zone, kind),
                  zone=zone, doing=kind)
        return end

    def frozen_stays(self) -> list[Resting]:
        return [
            Resting(s.item, self.patterns[s.item], SLOTS[s.zone][s.slot], s.t0,
                    self.duration if s.t1 is None else s.t1, s.grow, s.shrink)
            for s in self.stays
        ]

    # -- independent timelines: the sign, counting groups, speech -------------------------------

    def timeline(self, first: float, length: tuple[float, float], gap: tuple[float, float],
                 count: int) -> list[tuple[float, float]]:
        """Up to ``count`` non-overlapping windows, the first starting within ``first`` seconds."""
        windows, t = [], grid(self.uniform(1.0, first))
        while len(windows) < count:
            end = off_boundary(t + self.uniform(*length))
            if end > self.limit:
                break
            windows.append((t, end))
            t = grid(end + self.uniform(*gap))
        return windows

    def signs(self) -> tuple[SignWord, ...]:
        words = [SIGN_WORDS[i] for i in self.rng.permutation(len(SIGN_WORDS))]
        placed = []
        for word, (t0, t1) in zip(words, self.timeline(3.0, (9.0, 16.0), (1.5, 3.5), len(words))):
            placed.append(SignWord(word, t0, t1))
            self.fact(t0, t1, "text", "sign", say.sign_shows(word), word=word)
        return tuple(placed)

    def groups(self) -> tuple[Group, ...]:
        windows = self.timeline(6.0, (8.0, 14.0), (3.0, 7.0), len(self.group_items))
        placed = []
        for item, (t0, t1) in zip(self.group_items, windows):
            count = int(self.rng.integers(2, 8))
            placed.append(Group(item, count, t0, t1))
            self.fact(t0, t1, "count", "count", say.there_are(count, item, GROUP_ZONE),
                      item=item, count=count, zone=GROUP_ZONE)
        return tuple(placed)

    def speech(self) -> tuple[TextEvent, ...]:
        topics = [TOPICS[i] for i in self.rng.permutation(len(TOPICS))]
        lines = []
        windows = self.timeline(5.0, (2.0, 3.5), (8.0, 16.0), len(topics))
        for topic, (t0, t1) in zip(topics, windows):
            speaker = SPEAKERS[int(self.rng.integers(len(SPEAKERS)))]
            value = topic.values[int(self.rng.integers(len(topic.values)))]
            lines.append(TextEvent("speech", t0, t1, say.heard_line(speaker, topic.say(value))))
            self.fact(t0, t1, "speech", "speech", say.says(speaker, topic.say(value)),
                      speaker=speaker, topic=topic.key, value=value)
        return tuple(lines)


def simulate(seed: np.random.SeedSequence, duration: float) -> World:
    """The world of one episode."""
    return _Simulation(np.random.default_rng(seed), duration).run()
