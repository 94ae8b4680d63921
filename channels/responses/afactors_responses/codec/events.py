"""The SSE event sequence of a streamed response (R-30..R-35), numbered from 0.

`response.created` -> `response.in_progress` -> item events (see `output.py`) -> one terminal event:
`response.completed`, `response.failed` or `response.incomplete`. A cancelled response gets no terminal event (the
SDK has no `response.cancelled` event); its stream just ends and a poll shows `status: "cancelled"` (R-43).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import orjson

from afactors.model import Update
from afactors_responses.codec.output import OutputBuilder
from afactors_responses.codec.response import ResponseView, item_status, render_response

TERMINAL_EVENTS = {"completed": "response.completed", "failed": "response.failed", "incomplete": "response.incomplete"}


class EventStream:
    """Renders and numbers the events of one response; feed it `start`, then `add` per update, then `finish`.

    `chunked` cuts text deltas at fixed places (see `output.split_chunks`) so the events do not depend on how the
    target happened to split its text: background responses use it, so a replay matches the live stream.
    """

    def __init__(self, view: ResponseView, *, chunked: bool = False) -> None:
        self.view = view
        self.output = OutputBuilder(view.id, chunked=chunked, encrypted=view.encrypted)
        self.next_sequence = 0

    def _number(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        numbered = []
        for event in events:
            numbered.append({**event, "sequence_number": self.next_sequence})
            self.next_sequence += 1
        return numbered

    def start(self) -> list[dict[str, Any]]:
        """`response.created` (status `queued` for a background response) and `response.in_progress`."""
        created = "queued" if self.view.background else "in_progress"
        return self._number(
            [
                {"type": "response.created", "response": self._snapshot(created)},
                {"type": "response.in_progress", "response": self._snapshot("in_progress")},
            ]
        )

    def _snapshot(self, status: str) -> dict[str, Any]:
        return render_response(_with_status(self.view, status), output=[])

    def add(self, update: Update) -> list[dict[str, Any]]:
        return self._number(self.output.add(update))

    def finish(self, final: ResponseView) -> list[dict[str, Any]]:
        """Close the items and end with the terminal event of `final`; nothing when it was cancelled."""
        terminal = TERMINAL_EVENTS.get(final.status)
        if terminal is None:
            return []
        events = self.output.close(item_status(final.status), final.output if final.status == "completed" else None)
        events.append({"type": terminal, "response": render_response(final, output=self.output.items)})
        return self._number(events)


def _with_status(view: ResponseView, status: str) -> ResponseView:
    return attrs.evolve(view, status=status, completed_at=None, usage=None, error=None)  # type: ignore[arg-type]


def replay(view: ResponseView) -> list[dict[str, Any]]:
    """Every event of a finished background response, rendered from its stored record exactly as it streamed."""
    stream = EventStream(view, chunked=True)
    return [*stream.start(), *stream.finish(view)]


def sse_frame(event: dict[str, Any]) -> bytes:
    """One server-sent event: `event: <type>` and `data: <json>` (R-30)."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
