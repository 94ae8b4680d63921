"""The Responses wire as pure functions: request parsing, Response objects, input items, SSE events, errors.

Nothing here does I/O; `transport.py` calls these with what it read from the request.
"""

from afactors_responses.codec.errors import ApiError, error_body, not_found, response_error_code
from afactors_responses.codec.events import EventStream, replay, sse_frame
from afactors_responses.codec.output import OutputBuilder, output_items, split_chunks
from afactors_responses.codec.request import CreateRequest, parse_create, parse_response_id
from afactors_responses.codec.response import (
    PageQuery,
    ResponseView,
    input_items_page,
    parse_page_query,
    render_response,
    request_options,
    view_of_record,
    view_of_request,
)

__all__ = [
    "ApiError",
    "CreateRequest",
    "EventStream",
    "OutputBuilder",
    "PageQuery",
    "ResponseView",
    "error_body",
    "input_items_page",
    "not_found",
    "output_items",
    "parse_create",
    "parse_page_query",
    "parse_response_id",
    "render_response",
    "replay",
    "request_options",
    "response_error_code",
    "split_chunks",
    "sse_frame",
    "view_of_record",
    "view_of_request",
]
