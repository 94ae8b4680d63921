"""Turn any supported target into an `Agent`, or refuse it at startup.

Built-in shapes: an object with the `Agent` protocol (its `run(ctx)` an async generator, or a class that
subclasses `Agent`); `async def f(messages) -> str`; an async generator function `f(messages)` yielding `str`
deltas; a plain `def f(messages) -> str` (run in a worker thread). A function may also declare a keyword-only
`ctx` parameter to get the `TurnContext` (`def f(messages, *, ctx)`), e.g. to see a timer turn or schedule timers.
Installed target adapters (the `afactors.targets` entry-point group, e.g. `afactors-agent-framework`) add shapes of
their own: each one says explicitly whether an object is its kind. An object that fits no shape, or more than one,
is refused with a message naming every accepted shape.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator, Callable
from functools import cache, partial
from importlib.metadata import entry_points
from typing import Any, Protocol, cast, runtime_checkable

import trio

from afactors.model import Agent, TurnContext, Update

ENTRY_POINT_GROUP = "afactors.targets"
"""The entry-point group where target adapters register (each entry names a `TargetAdapter`)."""


class TargetError(TypeError):
    """A target that is not one of the accepted shapes, or that returned the wrong type."""


@runtime_checkable
class TargetAdapter(Protocol):
    """Hosts targets of one foreign kind (e.g. an agent framework's agents).

    `shape` describes the kind for error messages ("an Agent Framework agent (SupportsAgentRun)").
    `accepts` must detect the kind explicitly (an isinstance check against the framework's own class or
    protocol), never by the mere presence of an attribute. `adapt` returns the `Agent` that runs it; an agent
    that is also an async context manager is entered by the host for its lifetime (resources such as an
    event loop thread live there). `adapt` raises `TargetError` for a target of its kind that cannot be hosted.
    """

    shape: str

    def accepts(self, target: object) -> bool: ...

    def adapt(self, target: object) -> Agent: ...


def _check_text(value: object, target: object) -> str:
    if not isinstance(value, str):
        raise TargetError(f"target {target!r} must produce str, got {type(value).__name__}")
    return value


def _takes_ctx(fn: Callable[..., Any]) -> bool:
    """Whether a function target declares a `ctx` parameter to get the turn's `TurnContext` by keyword:
    keyword-only (`f(messages, *, ctx)`), or with a default (`f(messages, ctx=None)`). A required positional `ctx`
    is not one (`Agent.run(self, ctx)` read off a class must not pass for a function of the messages)."""
    try:
        parameter = inspect.signature(fn).parameters.get("ctx")
    except ValueError:
        return False
    if parameter is None:
        return False
    return parameter.kind == parameter.KEYWORD_ONLY or (
        parameter.kind == parameter.POSITIONAL_OR_KEYWORD and parameter.default is not parameter.empty
    )


class FunctionAgent:
    """Adapts a function of the conversation's messages to the `Agent` protocol.

    A function that declares a keyword-only `ctx` parameter (`def f(messages, *, ctx)`, or `ctx=None`) also gets the
    turn's `TurnContext` by keyword: its `kind` ("timer" when one of the conversation's timers fired), `timer`,
    `timers`, `state`...
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._kind = (
            "asyncgen" if inspect.isasyncgenfunction(fn) else "async" if inspect.iscoroutinefunction(fn) else "sync"
        )
        self._takes_ctx = _takes_ctx(fn)

    def __repr__(self) -> str:
        return f"FunctionAgent({getattr(self.fn, '__qualname__', self.fn)!r})"

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        call = partial(self.fn, list(ctx.messages), **({"ctx": ctx} if self._takes_ctx else {}))
        if self._kind == "asyncgen":
            async for delta in call():
                yield Update(delta=_check_text(delta, self.fn))
        elif self._kind == "async":
            yield Update(delta=_check_text(await call(), self.fn))
        else:
            if self._takes_ctx:
                ctx.timers.committed()  # read here: the store is read from trio tasks only, never from a thread
            text = await trio.to_thread.run_sync(call, abandon_on_cancel=True)
            yield Update(delta=_check_text(text, self.fn))


BUILTIN_SHAPES = (
    "an object with the afactors Agent protocol (an async generator method run(ctx), or a subclass of "
    "afactors.model.Agent)",
    "an async function f(messages) -> str",
    "an async generator function f(messages) yielding str",
    "a plain function f(messages) -> str",
)


def _is_agent(target: object) -> bool:
    """The afactors `Agent` shape, detected explicitly: an async generator `run`, or a declared subclass."""
    if inspect.isclass(target) or inspect.isroutine(target):
        return False
    if isinstance(target, Agent) and Agent in type(target).__mro__:
        return True
    return inspect.isasyncgenfunction(getattr(target, "run", None))


def _is_function(target: object) -> bool:
    """A function (or method) of one positional argument, the message list (and optionally `ctx`, by keyword)."""
    if not inspect.isroutine(target) and not (callable(target) and inspect.isroutine(getattr(target, "func", None))):
        return False  # functools.partial has .func; other callable objects must use the Agent protocol
    try:
        inspect.signature(target).bind([], **({"ctx": None} if _takes_ctx(cast(Callable[..., Any], target)) else {}))
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): let it through
        return True
    return True


@cache
def installed_adapters() -> tuple[TargetAdapter, ...]:
    """The target adapters registered in the `afactors.targets` entry-point group, by entry name."""
    found: list[TargetAdapter] = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        adapter = entry.load()
        if not isinstance(adapter, TargetAdapter):
            raise TargetError(f"entry point {entry.name!r} in {ENTRY_POINT_GROUP} is not a TargetAdapter")
        found.append(adapter)
    return tuple(found)


def accepted_shapes(adapters: tuple[TargetAdapter, ...] | None = None) -> list[str]:
    """Every target shape this process accepts, built-in ones first."""
    return [*BUILTIN_SHAPES, *(a.shape for a in (installed_adapters() if adapters is None else adapters))]


def as_agent(target: object, *, adapters: tuple[TargetAdapter, ...] | None = None) -> Agent:
    """Wrap `target` as an `Agent`, or raise `TargetError` naming every accepted shape.

    `adapters` defaults to the installed ones. This is the startup check: `open_host` and the CLI call it
    before anything serves, so a wrong target never reaches a turn.
    """
    adapters = installed_adapters() if adapters is None else adapters
    fits: list[tuple[str, Callable[[], Agent]]] = [
        (adapter.shape, partial(adapter.adapt, target)) for adapter in adapters if adapter.accepts(target)
    ]
    if _is_agent(target):
        agent = cast(Agent, target)
        fits.append((BUILTIN_SHAPES[0], lambda: agent))
    elif _is_function(target):
        fits.append(("a function of the message list", partial(FunctionAgent, cast(Callable[..., Any], target))))
    shapes = "; ".join(accepted_shapes(adapters))
    if not fits:
        raise TargetError(f"{target!r} is not a target. Accepted shapes: {shapes}")
    if len(fits) > 1:
        raise TargetError(
            f"{target!r} is ambiguous: it fits {' and also '.join(shape for shape, _ in fits)}. "
            f"Wrap it so it fits exactly one. Accepted shapes: {shapes}"
        )
    return fits[0][1]()


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
