"""Timer tools: an Agent Framework agent schedules, cancels and lists its conversation's timers during a turn.

`timer_tools()` are ordinary Agent Framework tools (`FunctionTool`s); give them to an agent
(`Agent(client=..., tools=timer_tools())`). Each call writes through the running turn's `ctx.timers`, so its
changes are committed with the turn (a turn that fails or is cancelled schedules nothing) and a timer fires as a
turn of kind "timer" on the same conversation (docs/timers.md).

The tools run on the adapter's asyncio thread; the turn's `TurnTimers` belongs to the host's trio thread, so each
call hops there (`trio.from_thread`, from a worker thread so the asyncio loop never blocks). Outside a turn
hosted by `AgentFrameworkAgent` or `WorkflowAgent` they raise `RuntimeError`. Bad input (an unknown zone, a bad
cron field, an `at` without offset, no such pending timer) is answered to the model as `{"error": ...}`, so it can
correct itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, TypeVar

import attrs
import orjson
import trio
from agent_framework import FunctionTool, tool

from afactors.model import Timer, TimerError, TurnContext, TurnTimers

T = TypeVar("T")


@attrs.frozen
class _Turn:
    timers: TurnTimers
    token: trio.lowlevel.TrioToken


_TURN: ContextVar[_Turn | None] = ContextVar("afactors_turn_timers", default=None)


@contextlib.contextmanager
def turn_timers(ctx: TurnContext, token: trio.lowlevel.TrioToken) -> Iterator[None]:
    """While inside (on the asyncio side of a turn), the timer tools act on `ctx.timers` via the trio `token`."""
    reset = _TURN.set(_Turn(ctx.timers, token))
    try:
        yield
    finally:
        _TURN.reset(reset)


async def _on_turn(call: Callable[[TurnTimers], T]) -> T:
    turn = _TURN.get()
    if turn is None:
        raise RuntimeError("the afactors timer tools work only inside a turn hosted by afactors")
    return await asyncio.to_thread(partial(trio.from_thread.run_sync, call, turn.timers, trio_token=turn.token))


def timer_view(timer: Timer) -> dict[str, Any]:
    """A timer as the tools show it to the model."""
    return {
        "id": timer.id,
        "due": datetime.fromtimestamp(timer.due_at, UTC).isoformat(),
        "cron": timer.cron,
        "timezone": timer.timezone,
        "payload": timer.payload,
    }


def _when(at: str) -> datetime:
    try:
        return datetime.fromisoformat(at)
    except ValueError:
        raise TimerError(f"at {at!r} is not an ISO 8601 date and time with a UTC offset") from None


async def schedule_timer(
    note: Annotated[str, "what the timer is for; handed back to you when it fires"] = "",
    at: Annotated[str | None, "ISO 8601 date and time with a UTC offset, e.g. 2027-01-04T09:00:00+01:00"] = None,
    after_seconds: Annotated[float | None, "fire this many seconds from now"] = None,
    cron: Annotated[str | None, "a five-field cron expression, e.g. '0 8 * * mon-fri', to fire repeatedly"] = None,
    timezone: Annotated[str | None, "the cron expression's IANA time zone, e.g. Europe/Berlin (default UTC)"] = None,
    id: Annotated[str | None, "a name for the timer (scheduling a name again replaces that timer)"] = None,
) -> dict[str, Any]:
    """Schedule a future turn of this conversation: give exactly one of at, after_seconds or cron."""
    payload = {"note": note} if note else None
    try:
        when = None if at is None else _when(at)
        if cron is not None:
            timer = await _on_turn(lambda t: t.cron(cron, timezone=timezone or "UTC", payload=payload, id=id))
        elif when is not None and after_seconds is None:
            timer = await _on_turn(lambda t: t.at(when, payload=payload, id=id))
        elif after_seconds is not None and when is None:
            timer = await _on_turn(lambda t: t.after(after_seconds, payload=payload, id=id))
        else:
            raise TimerError("give exactly one of at, after_seconds or cron")
    except TimerError as exc:
        return {"error": str(exc)}
    return {"scheduled": timer_view(timer)}


async def cancel_timer(id: Annotated[str, "the id of the timer to cancel"]) -> dict[str, Any]:
    """Cancel one of this conversation's pending timers."""
    if await _on_turn(lambda t: t.cancel(id)):
        return {"cancelled": id}
    return {"error": f"there is no pending timer {id!r}"}


async def list_timers() -> dict[str, Any]:
    """This conversation's pending timers, soonest first."""
    return {"timers": [timer_view(timer) for timer in await _on_turn(lambda t: t.list())]}


def timer_tools() -> list[FunctionTool]:
    """The three timer tools (`schedule_timer`, `cancel_timer`, `list_timers`), new instances per call."""
    return [tool(schedule_timer), tool(cancel_timer), tool(list_timers)]


def timer_message(timer: Timer) -> str:
    """What the agent is told as the input of a turn of kind "timer" (its history holds no new user message)."""
    detail = orjson.dumps(timer_view(timer)).decode()
    return f"[timer] A timer you scheduled is due now: {detail}. Do what it was for."
