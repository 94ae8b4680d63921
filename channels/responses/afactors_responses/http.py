"""HTTP helpers shared by the Responses and Conversations routes: JSON bodies in and out, allowed methods."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from quart import Response, request

from afactors_responses.codec import ApiError


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def check_method(allowed: Iterable[str]) -> None:
    method = "GET" if request.method == "HEAD" else request.method
    allowed = tuple(allowed)
    if method not in allowed:
        raise ApiError(
            405,
            f"Method {request.method} is not allowed for {request.path}; use {' or '.join(allowed)}.",
            code="method_not_allowed",
            headers={"Allow": ", ".join(allowed)},
        )


async def read_json() -> object:
    """The request body as JSON; 415 for another content type, 400 for bytes that are not JSON."""
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            f"Unsupported Content-Type {request.mimetype or '(none)'!r}: send the request body as application/json.",
            code="unsupported_media_type",
        )
    data = await request.get_data(as_text=False)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiError(
            400, "We could not parse the JSON body of your request. Send valid JSON.", code="invalid_json"
        ) from None
