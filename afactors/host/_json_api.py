"""The pieces shared by the host's own JSON routes (identity, pushes): the OpenAI error envelope
`{"error": {"message", "type", "code", "param"}}`, JSON answers, and a guard that turns errors into them."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Response, request

from afactors.channel import Unauthorized

View = Callable[..., Awaitable[Response]]


class BadRequest(Exception):
    """A request the route refuses: `status` (a 4xx), `code`, and the `param` at fault."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code, self.param = message, status, code, param


def json_response(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def error_response(message: str, status: int, code: str, param: str | None = None) -> Response:
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    return json_response({"error": {"message": message, "type": kind, "code": code, "param": param}}, status)


def guarded(view: View, translate: Callable[[Exception], BadRequest | None] = lambda _: None) -> View:
    """`view` answering `Unauthorized` with 401 and `BadRequest` (or what `translate` makes of an error) with its
    4xx."""

    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await view(*args, **kwargs)
        except Unauthorized as error:
            return error_response(str(error), 401, "invalid_api_key")
        except BadRequest as error:
            return error_response(error.message, error.status, error.code, error.param)
        except Exception as error:
            bad = translate(error)
            if bad is None:
                raise
            return error_response(bad.message, bad.status, bad.code, bad.param)

    wrapper.__name__ = view.__name__
    return wrapper


async def json_body() -> object:
    """The request body as JSON (an empty body is null); `BadRequest` when it is not JSON."""
    try:
        return json.loads(await request.get_data(as_text=True) or "null")
    except ValueError:
        raise BadRequest("The request body is not valid JSON.") from None
