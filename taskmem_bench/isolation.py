"""One rule for batched calls: a batch that fails is asked again item by item.

One bad item (a stream a policy chokes on, a request a server refuses) must not sink the other
items of its batch, so a failed batch is split and each item asked alone: only the items that
fail on their own get the exception, in their place. Some failures no single item caused (the
backend is down, the call ran out of time): retrying would only meet them again once per item,
so they go to every item not yet answered without another call. The runner calls policies and
readers this way, the LLM judge its backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def call_isolating(
    call: Callable[[list[Item]], Sequence[Result] | None],
    items: list[Item],
    what: str,
    *,
    whole_batch: tuple[type[BaseException], ...],
    failures: tuple[type[BaseException], ...] = (Exception,),
) -> list[Result | BaseException]:
    """``call(items)``, checked to return one result per item. If it raises one of ``failures``,
    ``call`` is made on each item alone and an item that fails on its own gets the exception in
    its place; a ``whole_batch`` error goes to every item not yet answered, without further
    calls. ``what`` names the call in the error about a wrong number of results."""

    def checked(batch: list[Item]) -> list[Result]:
        results = call(batch)
        if results is None or len(results) != len(batch):
            got = "None" if results is None else f"{len(results)} results"
            raise TypeError(f"{what} must return one result per input; got {got} for {len(batch)}")
        return list(results)

    try:
        return list(checked(items))
    except failures as exc:
        if len(items) == 1 or isinstance(exc, whole_batch):
            return [exc] * len(items)
    results: list[Result | BaseException] = []
    for item in items:
        try:
            results.extend(checked([item]))
        except whole_batch as exc:
            return results + [exc] * (len(items) - len(results))
        except failures as exc:
            results.append(exc)
    return results
