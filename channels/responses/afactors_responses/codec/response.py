"""The Response object (R-20..R-24) and input-item pages (R-45), rendered from a stored record or a live turn.

The request fields a response echoes travel as the envelope's options (`request_options`), which the store keeps
as `TurnView.data`, so a response read back later echoes what its request said.
"""

from __future__ import annotations

import math
from base64 import b64encode
from collections.abc import Sequence
from typing import Any

import attrs

from afactors.channel import TurnStatus, TurnView
from afactors.model import (
    ENDED_STATUSES,
    DataPart,
    ErrorInfo,
    FunctionCallPart,
    FunctionResultPart,
    Message,
    Part,
    ReasoningPart,
    TextPart,
    UriPart,
    UsagePart,
)
from afactors_responses.codec.errors import bad_request, response_error_code
from afactors_responses.codec.output import ItemStatus, item_id, output_items, reasoning_item
from afactors_responses.codec.request import DEFAULT_MODEL, INCLUDE_ENCRYPTED_REASONING, CreateRequest

SETTING_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "metadata": {},
    "tools": [],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_logprobs": 0,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "text": {"format": {"type": "text"}},
    "truncation": "disabled",
    "reasoning": None,
    "user": None,
    "safety_identifier": None,
    "prompt_cache_key": None,
    "service_tier": "default",
}
"""Every echoed request field (Open Responses requires all of them) and its value when the request left it out."""


@attrs.frozen
class ResponseView:
    """Everything a Response object shows: a stored record, or a turn the channel is running right now."""

    id: str
    status: TurnStatus
    created_at: float
    options: dict[str, Any] = attrs.Factory(dict)
    completed_at: float | None = None
    input: tuple[Message, ...] = ()
    output: tuple[Message, ...] = ()
    usage: UsagePart | None = None
    error: ErrorInfo | None = None
    previous_response_id: str | None = None
    background: bool = False

    @property
    def store(self) -> bool:
        return bool(self.options.get("store", True))

    @property
    def terminal(self) -> bool:
        return self.status in ENDED_STATUSES

    @property
    def encrypted(self) -> bool:
        """Whether reasoning items carry their `encrypted_content` (`include: ["reasoning.encrypted_content"]`)."""
        return INCLUDE_ENCRYPTED_REASONING in self.options.get("include", ())


def request_options(request: CreateRequest) -> dict[str, Any]:
    """The envelope options of a request: its non-default echoed settings plus model, store, background and
    conversation (the actor stores `store` and `background` in the record's own fields too)."""
    options: dict[str, Any] = {
        **request.settings,
        "model": request.model,
        "store": request.store,
        "background": request.background,
    }
    if request.conversation is not None:
        options["conversation"] = request.conversation
    return options


def view_of_request(request: CreateRequest, response_id: str, created_at: float) -> ResponseView:
    """A response that was just accepted and has not started."""
    return ResponseView(
        id=response_id,
        status="queued" if request.background else "in_progress",
        created_at=created_at,
        options=request_options(request),
        input=request.messages,
        previous_response_id=request.previous_response_id,
        background=request.background,
    )


def view_of_record(record: TurnView) -> ResponseView:
    return ResponseView(
        id=record.id,
        status=record.status,
        created_at=record.created_at,
        options=record.data,
        completed_at=record.completed_at,
        input=record.input,
        output=record.output,
        usage=record.usage,
        error=record.error,
        previous_response_id=record.parent,
        background=record.background,
    )


def usage_json(usage: UsagePart | None) -> dict[str, Any] | None:
    """The usage object in the shape openai 3.54.0 requires in strict mode (R-22)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _seconds(stamp: float | None) -> int | None:
    return None if stamp is None else math.floor(stamp)


def item_status(status: TurnStatus) -> ItemStatus:
    """The status of a finished response's items: `completed` for a completed response, else `incomplete`."""
    return "completed" if status == "completed" else "incomplete"


def render_response(view: ResponseView, output: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Response object; `output` defaults to the items of the view's stored output."""
    if output is None:
        output = []
        if view.terminal:
            output = output_items(view.id, view.output, item_status(view.status), encrypted=view.encrypted)
    settings = {key: view.options.get(key, default) for key, default in SETTING_DEFAULTS.items()}
    conversation = view.options.get("conversation")
    error = None
    if view.status == "failed":
        info = view.error or ErrorInfo("server_error", "The response failed.")
        error = {"code": response_error_code(info.code), "message": info.message}
    return {
        "id": view.id,
        "object": "response",
        "created_at": _seconds(view.created_at),
        "completed_at": _seconds(view.completed_at) if view.terminal else None,
        "status": view.status,
        "error": error,
        "incomplete_details": {"reason": None} if view.status == "incomplete" else None,
        "model": view.options.get("model", DEFAULT_MODEL),
        "output": list(output),
        "previous_response_id": view.previous_response_id,
        "conversation": None if conversation is None else {"id": conversation},
        "store": view.store,
        "background": view.background,
        "usage": usage_json(view.usage) if view.terminal else None,
        **settings,
    }


# ---------------------------------------------------------------- input items

DEFAULT_PAGE = 20
MAX_PAGE = 100


def _content_part(part: Part, role: str) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        if role == "assistant":
            return {"type": "output_text", "text": part.text, "annotations": [], "logprobs": []}
        return {"type": "input_text", "text": part.text}
    if isinstance(part, (DataPart, UriPart)):
        return _media_part(part)
    return None


def _media_part(part: DataPart | UriPart) -> dict[str, Any]:
    if isinstance(part, DataPart):
        url = f"data:{part.media_type};base64,{b64encode(part.data).decode('ascii')}"
        if part.media_type.startswith("image/"):
            return {"type": "input_image", "image_url": url, "detail": "auto"}
        return {"type": "input_file", "file_data": url, "filename": part.name}
    is_url = ":" in part.uri
    if part.media_type.startswith("image/"):
        return {
            "type": "input_image",
            "detail": "auto",
            **({"image_url": part.uri} if is_url else {"file_id": part.uri}),
        }
    return {
        "type": "input_file",
        "filename": part.name,
        **({"file_url": part.uri} if is_url else {"file_id": part.uri}),
    }


def message_items(turn_id: str, messages: Sequence[Message], *, encrypted: bool = False) -> list[dict[str, Any]]:
    """Input messages as input items in order, each with a stable id (`item_id` with index `i<n>`)."""
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        key = f"i{index}"
        calls = [p for p in message.contents if isinstance(p, FunctionCallPart)]
        results = [p for p in message.contents if isinstance(p, FunctionResultPart)]
        reasoning = [p for p in message.contents if isinstance(p, ReasoningPart)]
        if calls:
            call = calls[0]
            items.append(
                {
                    "type": "function_call",
                    "id": item_id("fc", turn_id, key),
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": "completed",
                }
            )
        elif results:
            media = [_media_part(p) for p in message.contents if isinstance(p, (DataPart, UriPart))]
            output: str | list[dict[str, Any]] = (
                results[0].result if not media else [{"type": "input_text", "text": results[0].result}, *media]
            )
            items.append(
                {
                    "type": "function_call_output",
                    "id": item_id("fco", turn_id, key),
                    "call_id": results[0].call_id,
                    "output": output,
                    "status": "completed",
                }
            )
        elif reasoning and len(reasoning) == len(message.contents):
            items.append(reasoning_item(item_id("rs", turn_id, key), reasoning[0], encrypted))
        else:
            content = [c for p in message.contents if (c := _content_part(p, message.role)) is not None]
            items.append(
                {
                    "type": "message",
                    "id": item_id("msg", turn_id, key),
                    "role": message.role,
                    "status": "completed",
                    "content": content,
                }
            )
    return items


def input_items(view: ResponseView) -> list[dict[str, Any]]:
    """The request's input items in request order."""
    return message_items(view.id, view.input, encrypted=view.encrypted)


def turn_items(
    turn_id: str, inputs: Sequence[Message], outputs: Sequence[Message], *, encrypted: bool = False
) -> list[dict[str, Any]]:
    """Every item of one turn: its input items, then its output items (as a conversation lists them)."""
    outputs_rendered = output_items(turn_id, outputs, "completed", encrypted=encrypted)
    return [*message_items(turn_id, inputs, encrypted=encrypted), *outputs_rendered]


@attrs.frozen
class PageQuery:
    """`limit`, `order` and `after` of an input-items request."""

    limit: int = DEFAULT_PAGE
    order: str = "desc"
    after: str | None = None


def parse_page_query(args: dict[str, str]) -> PageQuery:
    """Validate the query string of `GET /v1/responses/{id}/input_items` (`include` is accepted and ignored)."""
    limit = DEFAULT_PAGE
    if "limit" in args:
        try:
            limit = int(args["limit"])
        except ValueError:
            raise bad_request(
                f"Invalid 'limit': expected an integer, got {args['limit']!r}.", "limit", "invalid_type"
            ) from None
        if not 1 <= limit <= MAX_PAGE:
            raise bad_request(f"Invalid 'limit': {limit}. Expected a value from 1 to {MAX_PAGE}.", "limit")
    order = args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(f"Invalid 'order': {order!r}. Supported values are: asc, desc.", "order")
    after = args.get("after") or None
    return PageQuery(limit, order, after)


def input_items_page(view: ResponseView, query: PageQuery) -> dict[str, Any]:
    """One page of a response's input items."""
    return items_page(input_items(view), query, "in this response")


def items_page(items: list[dict[str, Any]], query: PageQuery, where: str) -> dict[str, Any]:
    """One page of `items` (oldest first): `{"object": "list", "data", "first_id", "last_id", "has_more"}`, in
    `query.order`, after the item `query.after` (an id of the previous page; an unknown one is a 400)."""
    if query.order == "desc":
        items = items[::-1]
    start = 0
    if query.after is not None:
        ids = [item["id"] for item in items]
        if query.after not in ids:
            raise bad_request(f"Invalid 'after': no item with id '{query.after}' {where}.", "after")
        start = ids.index(query.after) + 1
    page = items[start : start + query.limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": start + query.limit < len(items),
    }
