"""The Invocations wire as pure functions: default body, I-02 headers, I-08 isolation keys, I-06 errors, SSE frames.

Nothing here does I/O; `transport.py` calls these with what it read from the request.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import version
from typing import Any, Protocol
from urllib.parse import quote

import attrs
import orjson

from afactors.model import Message, Reply, ResponseTarget, parse_response_target

INVOCATION_ID_HEADER = "x-agent-invocation-id"
SESSION_ID_HEADER = "x-agent-session-id"
REQUEST_ID_HEADER = "x-request-id"
PLATFORM_SERVER_HEADER = "x-platform-server"
USER_ID_HEADER = "x-agent-user-id"
USER_ISOLATION_HEADER = "x-agent-user-isolation-key"
CHAT_ISOLATION_HEADER = "x-agent-chat-isolation-key"
SESSION_QUERY_PARAM = "agent_session_id"
SESSION_ENV_VAR = "FOUNDRY_AGENT_SESSION_ID"

PLATFORM_SERVER = (
    f"afactors-invocations/{version('afactors-invocations')} (python/{'.'.join(platform.python_version_tuple()[:2])})"
)

MAX_ID_CHARS = 256
MAX_HEADER_CHARS = 1024
_PROTOCOL_ID = re.compile(r"[A-Za-z0-9\-_.:]+")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")


class InvocationError(Exception):
    """A protocol error: an HTTP status and the I-06 envelope `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"retry-after": str(self.retry_after)}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    """The I-06 error envelope."""
    return {"error": {"code": code, "message": message}}


# ---------------------------------------------------------------- ids and headers (I-02)


def is_protocol_id(value: object) -> bool:
    """An id that may be echoed: `^[A-Za-z0-9\\-_.:]+$`, at most 256 characters."""
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS and _PROTOCOL_ID.fullmatch(value) is not None


def echo_or_new(value: str | None, new_id: Callable[[], str]) -> str:
    """`value` when it is a valid protocol id, else a fresh one (I-02 rule for invocation and request ids)."""
    return value if value is not None and is_protocol_id(value) else new_id()


def _is_session_id(value: str) -> bool:
    return len(value) <= MAX_ID_CHARS and _VISIBLE_ASCII.fullmatch(value) is not None


def _session_id(value: object, source: str, status: int) -> str | None:
    """A session id from `source`: None when absent or empty; visible ASCII of at most 256 characters."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvocationError(status, "invalid_request", f"{source} must be a string, got {_json_type(value)}")
    if not _is_session_id(value):
        raise InvocationError(
            status, "invalid_request", f"{source} must be 1 to {MAX_ID_CHARS} visible ASCII characters (no spaces)"
        )
    return value


def resolve_session_id(query: str | None, body: object, env: str | None, new_id: Callable[[], str]) -> str:
    """The session id: `?agent_session_id=`, else the body's `session_id`, else `$FOUNDRY_AGENT_SESSION_ID`, else new.

    A bad query value is a 400, a bad body value a 422; an unusable environment value is ignored.
    """
    return (
        _session_id(query, f"query parameter '{SESSION_QUERY_PARAM}'", 400)
        or _session_id(body, "'session_id'", 422)
        or (env if env and _is_session_id(env) else None)
        or new_id()
    )


class HeaderLookup(Protocol):
    """Request headers: a plain mapping (tests, other servers) or werkzeug's `Headers` (Quart)."""

    def get(self, key: str, /) -> str | None: ...

    def keys(self) -> Iterable[str]: ...


def header_value(headers: HeaderLookup, name: str) -> str | None:
    """A trimmed header value, None when absent or empty; 400 when it is not printable ASCII or too long."""
    value = (headers.get(name) or "").strip()
    if not value:
        return None
    if len(value) > MAX_HEADER_CHARS or _HEADER_TEXT.fullmatch(value) is None:
        raise InvocationError(
            400, "invalid_header", f"header {name} must be at most {MAX_HEADER_CHARS} printable ASCII characters"
        )
    return value


@attrs.frozen
class InvocationIds:
    """The ids of one exchange, sent back in the I-02 headers of every response."""

    invocation_id: str
    session_id: str
    request_id: str

    def headers(self) -> dict[str, str]:
        return {
            INVOCATION_ID_HEADER: self.invocation_id,
            SESSION_ID_HEADER: self.session_id,
            REQUEST_ID_HEADER: self.request_id,
            PLATFORM_SERVER_HEADER: PLATFORM_SERVER,
        }


# ---------------------------------------------------------------- isolation (I-08)


@attrs.frozen
class Isolation:
    """Whose conversation this is: the user key and the chat key (I-08)."""

    user_key: str
    chat_key: str

    @property
    def conversation(self) -> str:
        """The conversation id of the actor; both keys escaped so no two pairs collide."""
        return f"invocations/{quote(self.user_key, safe='')}/{quote(self.chat_key, safe='')}"


def user_key(headers: HeaderLookup, local_user: str) -> str:
    """x-agent-user-id ?? x-agent-user-isolation-key ?? `local_user` (local development sends neither)."""
    return header_value(headers, USER_ID_HEADER) or header_value(headers, USER_ISOLATION_HEADER) or local_user


def isolation(headers: HeaderLookup, session_id: str, local_user: str) -> Isolation:
    """The user key (see `user_key`) and the chat key: x-agent-chat-isolation-key ?? the session id."""
    return Isolation(user_key(headers, local_user), header_value(headers, CHAT_ISOLATION_HEADER) or session_id)


def turn_id_of(tenant: str, user_key: str, invocation_id: str) -> str:
    """The turn id behind an invocation id, scoped so another tenant or user naming the same id finds nothing."""
    return "inv_" + hashlib.sha256(orjson.dumps([tenant, user_key, invocation_id])).hexdigest()[:32]


# ---------------------------------------------------------------- pass-through headers (I-07)

PASSTHROUGH_HEADERS = ("x-agent-foundry-call-id", "traceparent", "tracestate")
CLIENT_HEADER_PREFIX = "x-client-"


def passthrough_headers(headers: HeaderLookup) -> dict[str, str]:
    """The headers the target must see (I-07): `x-agent-foundry-call-id` (to forward on its calls to Foundry
    services), `traceparent`/`tracestate` and every `x-client-*`, by lower-case name; they reach the target as
    `TurnContext.options["headers"]`. A value that is not printable ASCII is a 400."""
    found: dict[str, str] = {}
    for name in headers.keys():  # noqa: SIM118 (werkzeug's Headers iterate as (name, value) pairs)
        lower = name.lower()
        if lower in PASSTHROUGH_HEADERS or lower.startswith(CLIENT_HEADER_PREFIX):
            value = header_value(headers, name)
            if value is not None:
                found[lower] = value
    return found


# ---------------------------------------------------------------- request body


def _as_input(value: str | Message | Sequence[Message]) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message("user", value),)
    if isinstance(value, Message):
        return (value,)
    return tuple(value)


@attrs.frozen
class InvocationRequest:
    """What a body parser extracts: the turn's input (a string is one user message) and the transport flags."""

    input: tuple[Message, ...] = attrs.field(converter=_as_input)
    session_id: str | None = None
    stream: bool = False
    background: bool = False
    options: dict[str, Any] = attrs.Factory(dict)
    response_target: ResponseTarget | None = None


Parser = Callable[[Any], InvocationRequest]
"""Request JSON -> `InvocationRequest`. To refuse a body raise `InvocationError` or `HookRejected` (their status),
or `ValueError`/`TypeError`/`LookupError` (a 422 with the exception's message)."""

Renderer = Callable[[Reply, InvocationIds], Any]
"""A finished reply -> the JSON of the response body."""


def decode_json(raw: bytes | str) -> Any:
    """The request body as JSON; 400 `invalid_json` when empty or unparsable."""
    if not raw.strip():
        raise InvocationError(400, "invalid_json", "request body is empty: send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvocationError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvocationError(422, "invalid_request", f"'{name}' must be a boolean")
    return value


def parse_default(body: Any) -> InvocationRequest:
    """The default body: `{"message": str, "session_id"?: str, "stream"?: bool, "background"?: bool,
    "response_target"?: <response target>}` (docs/delivery.md; `"none"` makes the invocation a background one)."""
    if not isinstance(body, dict):
        raise InvocationError(422, "invalid_request", f"request body must be a JSON object, got {_json_type(body)}")
    message = body.get("message")
    if message is None:
        raise InvocationError(422, "invalid_request", 'missing \'message\': send {"message": "..."}')
    if not isinstance(message, str):
        raise InvocationError(422, "invalid_request", f"'message' must be a string, got {_json_type(message)}")
    if not message.strip():
        raise InvocationError(422, "invalid_request", "'message' must not be empty")
    session_id = body.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise InvocationError(422, "invalid_request", f"'session_id' must be a string, got {_json_type(session_id)}")
    stream, background = _flag(body, "stream"), _flag(body, "background")
    if stream and background:
        raise InvocationError(
            422,
            "invalid_request",
            "'stream' and 'background' cannot both be true: poll a background invocation instead",
        )
    target = None
    if body.get("response_target") is not None:
        try:
            target = parse_response_target(body["response_target"])
        except ValueError as exc:
            raise InvocationError(422, "invalid_request", str(exc)) from None
        if target.kind == "none":
            if stream:
                raise InvocationError(422, "invalid_request", "'response_target': 'none' cannot be streamed")
            background = True
    return InvocationRequest(
        message, session_id=session_id, stream=stream, background=background, response_target=target
    )


def _json_type(value: object) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- responses


def render_default(reply: Reply, ids: InvocationIds) -> dict[str, Any]:
    """The default response body: `{"response", "session_id", "invocation_id"}`."""
    return {"response": reply.text, "session_id": ids.session_id, "invocation_id": ids.invocation_id}


def reply_error(reply: Reply) -> InvocationError | None:
    """The error a turn that did not complete answers with (I-06), or None when it completed.

    Cancelled: 409 with the reason as code (`cancelled`, `interrupted`), or 503 when the host shut down first.
    Failed because the disk is full: 507. Failed or incomplete otherwise: 500 with the turn's error.
    """
    if reply.status == "completed":
        return None
    if reply.status == "cancelled":
        code, message = (
            (reply.error.code, reply.error.message) if reply.error else ("cancelled", "the turn was cancelled")
        )
        if code == "shutdown":
            return InvocationError(503, "shutting_down", message)
        return InvocationError(409, code, message)
    code, message = (
        (reply.error.code, reply.error.message) if reply.error else ("internal_error", "Internal server error")
    )
    if code == "store_full":
        return InvocationError(507, "insufficient_storage", message, retry_after=30)
    return InvocationError(500, code, message)


def status_body(
    ids: InvocationIds, status: str, *, result: Any = None, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The polling envelope: ids and status; `result` (what a synchronous call would have returned) when completed."""
    body: dict[str, Any] = {"invocation_id": ids.invocation_id, "session_id": ids.session_id, "status": status}
    if result is not None:
        body["result"] = result
    if error is not None:
        body["error"] = error
    return body


SSE_DONE = b"data: [DONE]\n\n"

WS_POLICY_VIOLATION = 1008
WS_HANDLER_ERROR = 1011


def ws_delta(delta: str) -> str:
    """A streamed text delta on the WebSocket (I-09): `{"type": "delta", "delta"}`."""
    return orjson.dumps({"type": "delta", "delta": delta}).decode()


def ws_result(ids: InvocationIds, result: Any) -> str:
    """The end of one invocation on the WebSocket: its ids and what a synchronous call returns."""
    body = {"type": "result", "invocation_id": ids.invocation_id, "session_id": ids.session_id, "result": result}
    return orjson.dumps(body).decode()


def ws_error(error: InvocationError) -> str:
    """A refused or failed invocation on the WebSocket: `{"type": "error", "error": {"code", "message"}}`."""
    return orjson.dumps({"type": "error", **error.body()}).decode()


def sse_delta(delta: str) -> bytes:
    """One streamed text delta: `data: {"delta": "..."}`."""
    return b"data: " + orjson.dumps({"delta": delta}) + b"\n\n"


def sse_error(error: InvocationError) -> bytes:
    """A failed stream's last frame (no `[DONE]` follows): `event: error` with the I-06 envelope."""
    return b"event: error\ndata: " + orjson.dumps(error.body()) + b"\n\n"
