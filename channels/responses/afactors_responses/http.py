"""HTTP helpers shared by the Responses and Conversations routes: JSON bodies in and out, allowed methods.

Each check exists once, taking the request's parts, so a route's Quart view and its lean view (the same route
served in front of Quart, see `afactors.channel.Route.lean`) answer alike: `check_method`/`read_json` read
Quart's `request`, `allow_method`/`parse_json` take the parts, and `json_response`/`lean_json` render one
`json_parts` on either side.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from quart import Response, request
from werkzeug.http import parse_options_header

from afactors.channel import LeanResponse
from afactors_responses.codec import ApiError


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def lean_json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> LeanResponse:
    """`json_response` for a lean view: the same status, headers (as Quart sends them) and bytes."""
    data = orjson.dumps(body)
    extra = tuple((name.lower(), value) for name, value in (headers or {}).items())
    return LeanResponse(
        status, (*extra, ("content-type", "application/json"), ("content-length", str(len(data)))), data
    )


def check_method(allowed: Iterable[str]) -> None:
    allow_method(allowed, request.method, request.path)


def allow_method(allowed: Iterable[str], method: str, path: str) -> None:
    """405 unless `method` (HEAD counting as GET) is one of `allowed`."""
    allowed = tuple(allowed)
    if ("GET" if method == "HEAD" else method) not in allowed:
        raise ApiError(
            405,
            f"Method {method} is not allowed for {path}; use {' or '.join(allowed)}.",
            code="method_not_allowed",
            headers={"Allow": ", ".join(allowed)},
        )


def mimetype(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, as Quart's `request.mimetype` reads it."""
    return parse_options_header(content_type or "")[0].lower()


async def read_json() -> object:
    """The request body as JSON; 415 for another content type, 400 for bytes that are not JSON."""
    check_json_type(request.mimetype)
    return parse_json(await request.get_data(as_text=False))


def check_json_type(media_type: str) -> None:
    """415 unless the body is declared as JSON."""
    if media_type != "application/json":
        raise ApiError(
            415,
            f"Unsupported Content-Type {media_type or '(none)'!r}: send the request body as application/json.",
            code="unsupported_media_type",
        )


def parse_json(data: bytes | str) -> object:
    """The body as JSON; 400 for bytes that are not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiError(
            400, "We could not parse the JSON body of your request. Send valid JSON.", code="invalid_json"
        ) from None
