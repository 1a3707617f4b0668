"""How the runner calls a policy or a reader: under a deadline, a batch at a time, and what a
failure costs; and what it accepts back from a reader or a scoring.

A plugin that raises (``SystemExit`` included), returns the wrong thing, runs past
``call_timeout_s`` or cannot be constructed costs only the streams or questions it was called
for; the run goes on. Each of those failures is turned into the error its rows record here.
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from taskmem_bench.backends.base import BackendUnavailable
from taskmem_bench.isolation import call_isolating
from taskmem_bench.readers import ReaderOutput
from taskmem_bench.scoring.base import ScoredAnswer
from taskmem_bench.scoring.judge import Judgment
from taskmem_bench.scoring.verdict import Verdict

T = TypeVar("T")

PLUGIN_FAILURES = (Exception, SystemExit)
"""What a policy or reader call may raise at the cost of only its stream or question:
``sys.exit()`` in a plugin must not end the run as a success. ``KeyboardInterrupt`` still
stops the run."""


class CallTimeout(TimeoutError):
    """A policy or reader call ran past ``call_timeout_s`` and was abandoned."""


class ComponentUnavailable(RuntimeError):
    """The policy or reader takes no call: it could not be constructed, or it is still running
    a call abandoned after ``call_timeout_s``."""


WHOLE_BATCH_FAILURES = (BackendUnavailable, CallTimeout, ComponentUnavailable)
"""Failures no single item caused: the backend is down, the call ran out of time, or the
component takes no call. Retrying item by item would only meet them once more per item (and
run a timed-out batch's items beside the abandoned call, on the same streams' state), so every
item gets the error."""


@dataclass
class CallGuard:
    """Makes one component's calls (the policy's, or the reader's) under ``timeout_s``.

    Without a timeout a call runs on the caller's thread. With one it runs on a daemon worker
    thread, which a timed-out call abandons (``CallTimeout``): Python cannot stop a thread, so
    it may keep running, and may still change the component's state, until it returns or the
    process ends. Until it returns, every further call to the component fails at once
    (``ComponentUnavailable``) instead of starting another thread beside it, so abandoned calls
    never pile up and a component (or a model engine that is not thread-safe) never runs two
    calls at once; after it returns, calls go through again. The runner never uses what an
    abandoned call returns and fails every stream or question it was for. A hang cannot
    corrupt the run's own records: the worker touches nothing but its result."""

    component: str
    timeout_s: float | None
    # the abandoned call, its limit, and an event set once it returned
    _abandoned: tuple[str, str, threading.Event] | None = None

    def call(
        self, what: str, fn: Callable[..., T], *args: Any,
        limit: tuple[str, float | None] | None = None,
    ) -> T:
        """``fn(*args)``, named ``<component>.<what>`` in errors; ``limit`` (a setting's name and
        its seconds, e.g. ``adapt_timeout_s``) bounds this call instead of ``timeout_s``."""
        what = f"{self.component}.{what}"
        self._check_free(what)
        setting, timeout_s = limit or ("call_timeout_s", self.timeout_s)
        if timeout_s is None:
            return fn(*args)
        outcome: list[tuple[bool, Any]] = []
        returned = threading.Event()

        def work() -> None:
            try:
                outcome.append((True, fn(*args)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                outcome.append((False, exc))
            finally:
                returned.set()

        threading.Thread(target=work, name=f"taskmem {what}", daemon=True).start()
        if not returned.wait(timeout_s):
            self._abandoned = (what, f"{setting}={timeout_s:g} s", returned)
            raise CallTimeout(f"{what} exceeded {setting}={timeout_s:g} s; the call was abandoned")
        done, value = outcome[0]
        if not done:
            raise value
        return value

    def _check_free(self, what: str) -> None:
        if self._abandoned is None:
            return
        abandoned, limit, returned = self._abandoned
        if not returned.is_set():
            raise ComponentUnavailable(
                f"{self.component} still busy with a call abandoned after {limit} ({abandoned}); "
                f"{what} was not made"
            )
        self._abandoned = None


call_batch = functools.partial(
    call_isolating, whole_batch=WHOLE_BATCH_FAILURES, failures=PLUGIN_FAILURES
)
"""Calls a policy's or reader's batch (:func:`~taskmem_bench.isolation.call_isolating`): a
failing stream or question does not sink its batch."""


def constructed(
    role: str, given: T | None, make: Callable[[], T]
) -> tuple[T | None, tuple[str, str] | None]:
    """The ``given`` component, else a new one; a constructor that raises (``SystemExit``
    included) gives none, and the failure (reason, traceback) that every stream then gets."""
    if given is not None:
        return given, None
    try:
        return make(), None
    except PLUGIN_FAILURES as exc:
        error = ComponentUnavailable(
            f"the {role} could not be constructed: {type(exc).__name__}: {exc}"
        )
        error.__cause__ = exc
        return None, (f"{role}_error", failure_text(error))


def checked_output(result: object) -> ReaderOutput | BaseException:
    """A reader's result as the runner accepts it: a ``ReaderOutput`` holding a ``str``, or an
    exception (its question's ``reader_error``) naming what came instead."""
    if isinstance(result, ReaderOutput) and not isinstance(result.raw, str):
        return TypeError(f"ReaderOutput.raw must be a str, got {type(result.raw).__name__}")
    return _of_type(result, ReaderOutput, "answer()")


def checked_verdict(result: object) -> ScoredAnswer | BaseException:
    """A scoring's result for one reply as the runner accepts it: a ``ScoredAnswer`` of the
    types its row needs, or an exception (its question's ``scoring_error``) naming what came
    instead, so a plugin scoring that returns ``None`` or a dict for one reply costs that
    question, not the run."""
    if isinstance(result, ScoredAnswer) and not (
        isinstance(result.verdict, Verdict)
        and isinstance(result.judgment, Judgment | None)
        and isinstance(result.variants, str | None)
    ):
        got = ", ".join(type(value).__name__
                        for value in (result.verdict, result.judgment, result.variants))
        return TypeError("a ScoredAnswer holds a Verdict, a Judgment or None and a str or None; "
                         f"got {got}")
    return _of_type(result, ScoredAnswer, "score()")


def _of_type(result: object, cls: type[T], what: str) -> T | BaseException:
    if isinstance(result, (cls, BaseException)):
        return result
    return TypeError(f"{what} must return {cls.__name__} objects, got {type(result).__name__}")


def failure_text(exc: BaseException) -> str:
    """The traceback a row or a stream's failure records for ``exc``."""
    return "".join(traceback.format_exception(exc))
