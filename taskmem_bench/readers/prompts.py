"""The paper reader's prompt: the whole rendered memory, the question, reasoning, a final line.

The structure follows the TaskMem paper's fixed reader (all memory in the prompt; options A.. plus
one label meaning "cannot be determined from the memory"; open answers abstain with
"Insufficient Information"); the wording is this project's own. Every fixed piece of text lives
in :class:`PromptTemplates`, whose ``text`` is what a reader hashes into the manifest, so no
wording can change without the prompt hash changing.

:func:`render_prompt` gives the text-only prompt as one string (what the lm-eval bridge sends);
:func:`build_messages` gives the same text as chat messages, with recent frames (only the
recent-frames control supplies them) as a video part between the memory and the question.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from taskmem_bench.backends.base import Message, TextPart
from taskmem_bench.readers.base import ReaderInput
from taskmem_bench.schema import ANSWER_LABELS, ScoringSpec


@dataclass(frozen=True)
class PromptTemplates:
    """The fixed text of a memory reader's prompt; ``str.format`` fields in braces."""

    head: str = (
        "You will answer a question about a video stream using a memory of that stream: notes "
        "written while it played, each under the time span it covers (HH:MM:SS-HH:MM:SS, with the "
        "day as DAY<d> on streams that run past a day). Rely "
        "only on what you are given here, not on general knowledge or guesses.\n\n"
        "Memory:\n{memory}"
    )
    empty_memory: str = "(the memory holds no notes)"
    frames_note: str = "These are the latest frames of the stream before the question:"
    choice: str = (
        "Question (asked at {time}): {question}\n"
        "Options:\n{options}\n\n"
        "First work out what the memory says about the question. Then write your choice on a "
        "last line of the form \"Answer: X\", where X is one of the letters {labels}. Choose "
        "{abstain} when the memory does not establish the answer."
    )
    option: str = "{label}. {text}"
    abstain_option: str = "Cannot be determined from the memory"
    open: str = (
        "Question (asked at {time}): {question}\n\n"
        "First work out what the memory says about the question. Then write your answer as a "
        "short phrase on a last line of the form \"Answer: ...\". When the memory does not "
        "establish the answer, the last line must be exactly \"Answer: {abstain_text}\"."
    )
    abstain_text: str = ScoringSpec().abstain_text

    @property
    def text(self) -> str:
        """Every template, named, in a fixed order: the reader's hashed ``prompt``."""
        return "\n\n".join(f"[{f.name}]\n{getattr(self, f.name)}" for f in fields(self))

    def memory_part(self, task: ReaderInput) -> str:
        return self.head.format(memory=task.memory.render() or self.empty_memory)

    def question_part(self, task: ReaderInput) -> str:
        time = task.memory.render_time(task.memory.t)
        if task.answer_format == "open":
            return self.open.format(question=task.question, time=time,
                                    abstain_text=self.abstain_text)
        labels = ANSWER_LABELS[: len(task.options) + 1]
        lines = [self.option.format(label=lab, text=opt) for lab, opt in zip(labels, task.options)]
        lines.append(self.option.format(label=labels[-1], text=self.abstain_option))
        listed = f"{', '.join(labels[:-1])} or {labels[-1]}" if len(labels) > 1 else labels
        return self.choice.format(
            question=task.question, time=time, options="\n".join(lines), labels=listed,
            abstain=labels[-1],
        )


PAPER_TEMPLATES = PromptTemplates()


def render_prompt(task: ReaderInput, templates: PromptTemplates = PAPER_TEMPLATES) -> str:
    """The text-only prompt as one string. Frames cannot be shown as text, so an input that
    carries them is refused rather than silently answered without them."""
    if task.frames is not None:
        raise ValueError(
            "this input carries video frames (recent-frames control); a text-only prompt cannot "
            "show them: use build_messages with a backend that takes video"
        )
    return f"{templates.memory_part(task)}\n\n{templates.question_part(task)}"


def build_messages(
    task: ReaderInput, templates: PromptTemplates = PAPER_TEMPLATES
) -> tuple[Message, ...]:
    """One user message: the prompt of :func:`render_prompt`, or with frames, the memory, the
    frames note and the frames (a video part), then the question."""
    if task.frames is None:
        return (Message.text("user", render_prompt(task, templates)),)
    memory = f"{templates.memory_part(task)}\n\n{templates.frames_note}"
    return (
        Message("user", (TextPart(memory), task.frames, TextPart(templates.question_part(task)))),
    )
