"""Turn any supported target into an `Agent`.

Accepted targets: an object with the `Agent` protocol; `async def f(messages) -> str`; an async generator
function `f(messages)` yielding `str` deltas; a plain `def f(messages) -> str` (run in a worker thread).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from afactors.model import Agent, Message, TurnContext, Update


class TargetError(TypeError):
    """A target that is not one of the accepted shapes, or that returned the wrong type."""


def _check_text(value: object, target: object) -> str:
    if not isinstance(value, str):
        raise TargetError(f"target {target!r} must produce str, got {type(value).__name__}")
    return value


class FunctionAgent:
    """Adapts a function of the conversation's messages to the `Agent` protocol."""

    def __init__(self, fn: Callable[[list[Message]], Any]) -> None:
        self.fn = fn
        self._kind = (
            "asyncgen" if inspect.isasyncgenfunction(fn) else "async" if inspect.iscoroutinefunction(fn) else "sync"
        )

    def __repr__(self) -> str:
        return f"FunctionAgent({getattr(self.fn, '__qualname__', self.fn)!r})"

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        messages = list(ctx.messages)
        if self._kind == "asyncgen":
            async for delta in self.fn(messages):
                yield Update(delta=_check_text(delta, self.fn))
        elif self._kind == "async":
            yield Update(delta=_check_text(await self.fn(messages), self.fn))
        else:
            text = await trio.to_thread.run_sync(self.fn, messages, abandon_on_cancel=True)
            yield Update(delta=_check_text(text, self.fn))


def as_agent(target: object) -> Agent:
    """Wrap `target` as an `Agent`, or raise `TargetError` naming what was expected."""
    if not inspect.isclass(target):
        if isinstance(target, Agent) and not inspect.isroutine(target):
            return target
        if callable(target):
            return FunctionAgent(target)
    raise TargetError(
        f"{target!r} is not a target: expected an Agent (with run(ctx)), an async function, an async generator "
        "function or a plain function of the message list"
    )


def load_target(spec: str) -> Agent:
    """Import `module:attr` and wrap it as an `Agent`."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TargetError(f"--target must look like 'module:attr', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    return as_agent(obj)
