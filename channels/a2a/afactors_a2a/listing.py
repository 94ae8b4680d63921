"""ListTasks (A-14): filtering, ordering by status timestamp (newest first) and cursor paging. Pure.

A page token is an opaque cursor naming the last task of the previous page (its timestamp and id), so tasks
that are added or change state between pages neither repeat nor shift the pages that follow.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

import orjson

from afactors_a2a.errors import invalid_params
from afactors_a2a.requests import ListQuery
from afactors_a2a.tasks import TaskView, render_task


def _order(view: TaskView) -> tuple[float, str]:
    return (-view.timestamp, _inverted(view.id))


def _inverted(text: str) -> str:
    """A key that sorts strings in reverse (ids of equal timestamps: newest id first)."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def encode_token(view: TaskView) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([view.timestamp, view.id])).decode("ascii")


def decode_token(token: str) -> tuple[float, str]:
    try:
        stamp, task_id = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if isinstance(stamp, int | float) and not isinstance(stamp, bool) and isinstance(task_id, str):
            return (-float(stamp), _inverted(task_id))
    except (binascii.Error, ValueError, TypeError, UnicodeEncodeError):
        pass
    raise invalid_params(f"'pageToken' {token!r} is not a token this server issued", "pageToken")


def list_page(views: Iterable[TaskView], query: ListQuery) -> dict[str, Any]:
    """The ListTasksResponse: `tasks`, `nextPageToken` (always present, "" on the last page), `pageSize`,
    `totalSize` (tasks matching the filters, over all pages)."""
    matching = [
        view
        for view in views
        if (query.context_id is None or view.context_id == query.context_id)
        and (query.state is None or view.state == query.state)
        and (query.status_after is None or view.timestamp > query.status_after)
    ]
    matching.sort(key=_order)
    if query.page_token:
        cursor = decode_token(query.page_token)
        matching_after = [view for view in matching if _order(view) > cursor]
    else:
        matching_after = matching
    page = matching_after[: query.page_size]
    more = len(matching_after) > len(page)
    return {
        "tasks": [
            render_task(view, history_length=query.history_length, include_artifacts=query.include_artifacts)
            for view in page
        ],
        "nextPageToken": encode_token(page[-1]) if more else "",
        "pageSize": query.page_size,
        "totalSize": len(matching),
    }
