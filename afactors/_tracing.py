"""Turn tracing as the core sees it: no-op unless a host is given an OpenTelemetry tracer provider.

The core never imports OpenTelemetry: it calls a `Tracing` (this no-op by default; `afactors.host._otel` holds the
real one, loaded only when traces are on, with the `otel` extra). The actor opens one `TurnSpan` per turn attempt;
while the target runs it is `current_span()`, so a target adapter can put `outgoing_headers()` on its model calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

from afactors.model import Envelope


class TurnSpan:
    """One turn attempt's span. This base records nothing (traces are off)."""

    __slots__ = ()

    def commit(self) -> AbstractContextManager[Any]:
        """Around the turn's store commit (timed as its own span)."""
        return _NOTHING

    def failed(self, error_type: str) -> None:
        """The target raised (`error_type` is the exception's class name; never its message)."""

    def ended(self, status: str, code: str | None = None) -> None:
        """The turn was answered with a reply of `status` (and error `code` if it failed)."""

    def headers(self) -> dict[str, str]:
        """Propagation headers (`traceparent`, `tracestate`) that make a call a child of this span."""
        return {}


_NOTHING: AbstractContextManager[None] = nullcontext()
NO_SPAN = TurnSpan()
_OFF: AbstractContextManager[TurnSpan] = nullcontext(NO_SPAN)  # reusable: tracing off costs no allocation
_current: ContextVar[TurnSpan] = ContextVar("afactors_turn_span", default=NO_SPAN)


class Tracing:
    """Turn tracing switched off: nothing is extracted, every span is `NO_SPAN`."""

    enabled = False

    def carrier(self, header: Callable[[str], str | None]) -> dict[str, str]:
        """The trace-context fields of an inbound request (`header(name)` reads one header), for its envelope."""
        return {}

    def turn(self, turn_id: str, envelopes: list[Envelope], attempt: int) -> AbstractContextManager[TurnSpan]:
        """The span of one attempt of a turn (its folded `envelopes`, the first one leading)."""
        return _OFF


@contextmanager
def current(span: TurnSpan) -> Iterator[TurnSpan]:
    """Make `span` the one `current_span()` returns inside the block (in this task and tasks it starts)."""
    token = _current.set(span)
    try:
        yield span
    finally:
        _current.reset(token)


def current_span() -> TurnSpan:
    """The span of the turn whose target is running in this task; `NO_SPAN` outside a traced turn."""
    return _current.get()


def outgoing_headers() -> dict[str, str]:
    """Headers for an outgoing call that continue the running turn's trace (empty when traces are off)."""
    return _current.get().headers()
