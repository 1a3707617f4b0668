"""The closed vocabulary of the mini world: every name a fact, question or option may use."""

from __future__ import annotations

from dataclasses import dataclass

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
PATTERNS = ("solid", "striped", "dotted", "hollow")

ITEM_ZONES = ("shelf", "table", "box", "door")
"""Zones where single objects rest; the person walks to these and to the rug."""
GROUP_ZONE = "rug"
"""Groups of identical objects (the counting task) appear only on the rug."""
PERSON_ZONES = ITEM_ZONES + (GROUP_ZONE,)

GESTURES = ("waves", "jumps", "claps", "spins")

SIGN_WORDS = (
    "EXIT", "OPEN", "CLOSED", "SALE", "PUSH", "PULL", "STOP", "WAIT",
    "QUIET", "HELLO", "LUNCH", "SOUP", "TAXI", "HOTEL", "PARK", "BANK",
)
SPEAKERS = ("Alice", "Bob", "Carol", "Dave")


@dataclass(frozen=True)
class Item:
    """A single object's identity: unique per episode, so a name picks out one object."""

    colour: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Topic:
    """One kind of speech line; each topic is spoken at most once per episode."""

    key: str
    statement: str  # with a {value} slot
    question: str  # with a {speaker} slot
    values: tuple[str, ...]

    def say(self, value: str) -> str:
        return self.statement.format(value=value)


def place_phrase(zone: str) -> str:
    """Where an object rests, e.g. 'in the box'."""
    return {"box": "in the box", "door": "by the door"}.get(zone, f"on the {zone}")


TOPICS = (
    Topic("password", "the password is {value}", "What does {speaker} say the password is?",
          ("TIGER", "RIVER", "CLOUD", "MAPLE", "ROBOT", "PIANO", "OCEAN", "CANDY")),
    Topic("room", "the meeting is in room {value}",
          "Which room does {speaker} say the meeting is in?",
          ("12", "14", "21", "23", "31", "35", "42", "48")),
    Topic("lucky", "the lucky number is {value}", "What does {speaker} say the lucky number is?",
          ("3", "4", "5", "6", "7", "8", "9")),
    Topic("platform", "the train leaves from platform {value}",
          "Which platform does {speaker} say the train leaves from?",
          ("1", "2", "3", "4", "5", "6", "7")),
    Topic("fruit", "my favourite fruit is {value}",
          "What does {speaker} say their favourite fruit is?",
          ("apple", "banana", "cherry", "grape", "lemon", "mango", "peach")),
    Topic("dog", "the dog is called {value}", "What does {speaker} say the dog is called?",
          ("Rex", "Bella", "Max", "Luna", "Daisy", "Milo")),
    Topic("party", "the party is on {value}", "When does {speaker} say the party is?",
          ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")),
    Topic("keys", "the keys are {value}", "Where does {speaker} say the keys are?",
          tuple(place_phrase(z) for z in ITEM_ZONES)),
)


def topic_named(key: str) -> Topic:
    """The topic whose ``key`` a speech fact's ``topic`` argument names."""
    return next(t for t in TOPICS if t.key == key)
