"""Timers: future turns a conversation schedules for itself (at a time, after a delay, or on a cron schedule).

`Timer` is the data; `new_timer` checks and builds one (the host's API and HTTP route use it too); `TurnTimers`
is what a target gets as `ctx.timers`: it reads the conversation's pending timers and records the turn's
changes, which are committed with the turn (a turn that fails or is cut schedules and cancels nothing).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypedDict

import attrs
import orjson

from afactors.model.cron import Cron, CronError, zone
from afactors.model.envelope import Identity, ReplyTarget, ResponseTarget

TIMER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""What a timer id may look like: 1-128 letters, digits, `.`, `_`, `:`, `-` (no `/`), not starting with a sign."""

MAX_DUE = 253_402_300_799.0
"""The latest due time, 9999-12-31T23:59:59Z, in epoch seconds."""

MAX_PAYLOAD_BYTES = 64 * 1024
"""A timer's payload is kept in its row and handed to its turn: at most this much JSON."""


class TimerError(ValueError):
    """A timer that cannot be scheduled as asked; the message says why (for a 400 or a target's own check)."""


@attrs.frozen
class Timer:
    """A pending timer of one conversation.

    `due_at`: epoch seconds of its next firing. `cron`/`timezone`: a schedule (it stays pending after each
    firing, due at its next occurrence); None for a one-shot timer. `payload`: handed to the timer's turn.
    `reply_to`: where that turn's reply is pushed; None: the conversation's last known reply address when it
    fires. `response_target`: where else (or instead) its answer goes, resolved when it fires as a turn's is at
    submit (see `ResponseTarget`); `sender`: whom the timer acts for (the sender of the turn that set it), the
    person `active`/`channels`/`all_linked` targets are resolved against. `fired`: occurrences fired so far.
    """

    id: str
    due_at: float
    payload: dict[str, Any] = attrs.Factory(dict)
    cron: str | None = None
    timezone: str | None = None
    reply_to: ReplyTarget | None = None
    created_at: float = 0.0
    fired: int = 0
    response_target: ResponseTarget | None = None
    sender: Identity | None = None

    def following(self, now: float) -> Timer | None:
        """The timer after firing at `now`: a schedule's next occurrence after `now` (missed ones are skipped)."""
        if self.cron is None:
            return None
        tz = zone(self.timezone or "UTC")
        return attrs.evolve(
            self, due_at=Cron.parse(self.cron).next_after(max(now, self.due_at), tz), fired=self.fired + 1
        )


class TimerSpec(TypedDict, total=False):
    """The keyword arguments of `new_timer` besides `now` (what `Timers.schedule` passes through)."""

    at: datetime | float | None
    after: timedelta | float | None
    cron: str | None
    timezone: str | None
    payload: dict[str, Any] | None
    id: str | None
    reply_to: ReplyTarget | None
    response_target: ResponseTarget | None
    sender: Identity | None


def new_timer(
    *,
    now: float,
    at: datetime | float | None = None,
    after: timedelta | float | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    payload: dict[str, Any] | None = None,
    id: str | None = None,
    reply_to: ReplyTarget | None = None,
    response_target: ResponseTarget | None = None,
    sender: Identity | None = None,
) -> Timer:
    """A checked `Timer`: exactly one of `at` (an aware datetime or epoch seconds), `after` (seconds or a
    timedelta, not negative) or `cron` (with an optional IANA `timezone`, default UTC). Raises `TimerError`."""
    if sum(value is not None for value in (at, after, cron)) != 1:
        raise TimerError("give exactly one of at, after or cron")
    if timezone is not None and cron is None:
        raise TimerError("timezone goes with cron (give `at` as an aware datetime instead)")
    timer_id = _timer_id(id)
    payload = _payload(payload)
    if cron is not None:
        try:
            due = Cron.parse(cron).next_after(now, zone(timezone or "UTC"))
        except CronError as exc:
            raise TimerError(str(exc)) from None
    elif after is not None:
        due = now + _seconds(after)
    else:
        due = _epoch(at)
    if not due <= MAX_DUE:
        raise TimerError("the timer would be due after the year 9999")
    return Timer(
        id=timer_id, due_at=due, payload=payload, cron=cron, timezone=timezone if cron else None, reply_to=reply_to,
        created_at=now, response_target=response_target, sender=sender,
    )  # fmt: skip


def _timer_id(value: str | None) -> str:
    if value is None:
        return "tmr_" + secrets.token_hex(8)
    if not isinstance(value, str) or not TIMER_ID.fullmatch(value):
        raise TimerError(f"timer id {value!r} must be 1-128 letters, digits, '.', '_', ':' or '-'")
    return value


def _payload(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TimerError(f"payload must be a JSON object, not {type(value).__name__}")
    try:
        size = len(orjson.dumps(value))
    except TypeError as exc:
        raise TimerError(f"payload is not JSON: {exc}") from None
    if size > MAX_PAYLOAD_BYTES:
        raise TimerError(f"payload is {size} bytes of JSON; the limit is {MAX_PAYLOAD_BYTES}")
    return value


def _seconds(value: Any) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise TimerError(f"after must be a number of seconds, zero or more, not {value!r}")
    return float(seconds)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TimerError("at must be an aware datetime (with a time zone)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        raise TimerError(f"at must be an aware datetime or epoch seconds, not {value!r}")
    return float(value)


class TurnTimers:
    """`ctx.timers`: schedule, cancel and list this conversation's timers from inside a turn.

    Changes take effect when the turn commits (and not at all if it fails). Scheduling an id that exists
    replaces that timer. `loader` reads the committed timers (only when first needed); `clock` is the time.
    A timer set here acts for the turn's `sender` and, unless given its own, answers to the turn's
    `response_target` (a reminder set from a turn whose answers go to all linked channels goes there too).
    """

    def __init__(
        self, loader: Callable[[], Iterable[Timer]] = tuple, clock: Callable[[], float] = time.time, *,
        sender: Identity | None = None, response_target: ResponseTarget | None = None,
    ) -> None:  # fmt: skip
        self._loader = loader
        self._clock = clock
        self._sender = sender
        self._response_target = response_target
        self._committed: dict[str, Timer] | None = None
        self.changes: dict[str, Timer | None] = {}
        """Timer id -> the timer to put, or None to cancel it: what the turn's commit writes."""

    def committed(self) -> dict[str, Timer]:
        """The timers committed before this turn, by id (read once)."""
        if self._committed is None:
            self._committed = {timer.id: timer for timer in self._loader()}
        return self._committed

    def at(
        self, when: datetime | float, *, payload: dict[str, Any] | None = None, id: str | None = None,
        reply_to: ReplyTarget | None = None, response_target: ResponseTarget | None = None,
    ) -> Timer:  # fmt: skip
        """A turn at `when` (an aware datetime, or epoch seconds)."""
        return self._put(at=when, payload=payload, id=id, reply_to=reply_to, response_target=response_target)

    def after(
        self, delay: timedelta | float, *, payload: dict[str, Any] | None = None, id: str | None = None,
        reply_to: ReplyTarget | None = None, response_target: ResponseTarget | None = None,
    ) -> Timer:  # fmt: skip
        """A turn `delay` (seconds or a timedelta) from now."""
        return self._put(after=delay, payload=payload, id=id, reply_to=reply_to, response_target=response_target)

    def cron(
        self, expression: str, *, timezone: str = "UTC", payload: dict[str, Any] | None = None, id: str | None = None,
        reply_to: ReplyTarget | None = None, response_target: ResponseTarget | None = None,
    ) -> Timer:  # fmt: skip
        """A turn at every occurrence of the cron `expression` in `timezone` (see `afactors.model.cron`)."""
        return self._put(
            cron=expression, timezone=timezone, payload=payload, id=id, reply_to=reply_to,
            response_target=response_target,
        )  # fmt: skip

    def cancel(self, timer_id: str) -> bool:
        """Cancel a pending timer (committed, or scheduled earlier in this turn); False if there is none."""
        if self.get(timer_id) is None:
            return False
        self.changes[timer_id] = None
        return True

    def get(self, timer_id: str) -> Timer | None:
        """The pending timer `timer_id` as this turn sees it."""
        if timer_id in self.changes:
            return self.changes[timer_id]
        return self.committed().get(timer_id)

    def list(self) -> list[Timer]:
        """The pending timers as this turn sees them (committed ones plus this turn's changes), by due time."""
        timers = {**self.committed(), **self.changes}
        return sorted((t for t in timers.values() if t is not None), key=lambda t: (t.due_at, t.id))

    def _put(self, **spec: Any) -> Timer:
        spec["response_target"] = spec["response_target"] or self._response_target
        timer = new_timer(now=self._clock(), sender=self._sender, **spec)
        self.changes[timer.id] = timer
        return timer
