"""The wire format of forwarding between nodes: pure encoders and decoders, no I/O.

A node that does not own a conversation sends the (already admitted) envelope to the owner's internal route
`POST /v1/cluster/turns` as one JSON object, `{"schema": 1, "channel", "stream", "background", "envelope"}`, the
envelope in the one cattrs converter's shape (`afactors.model.converter`). The owner answers 200 with NDJSON, one
event a line: `{"accepted": "<turn id>"}` (with `"done": true` when it had ended before) once the turn is accepted
(durably: a forwarded envelope always carries an idempotency key), then `{"update": {...}}` per streamed update,
then `{"reply": {...}, "stream_dropped": bool}`; empty lines are heartbeats. A background turn's answer is
`{"accepted": ...}` then `{"record": {...}}` (its queued record). A refusal is a 4xx or 5xx with
`{"error": {"code", "message"}}` (and `Retry-After` on 503). `POST /v1/cluster/turns/<id>/cancel` answers
`{"cancelled": bool}`. `POST /v1/cluster/turns/<id>/follow` with `{"schema": 1, "updates": bool}` follows a
background turn the node holds: `{"accepted": "<turn id>"}`, its updates from the first (with `"updates": true`),
heartbeats, then `{"ended": "<turn id>"}` once it has ended (committed); 404 `not_running` when it holds none.
`POST /v1/cluster/pushes` with `{"schema": 1, "channel", "key", "push_id", "address", "reply"}` queues a channel's
push into a conversation the node owns, once per push id: `{"pushed": "<push id>", "duplicate": bool}`.
`POST /v1/cluster/dead-letters/replay` with `{"schema": 1, "key", "dead_letters": ["<dead-letter key>", ...]}` gives
those dead letters of a conversation the node owns another go (a redrive or an admin replay asked of another node),
each once however often it is sent: `{"replayed": <how many this request moved>}`.

Must not import: `afactors.host` (the host imports this package).
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson

from afactors.model import ConversationKey, Envelope, Reply, Update, converter, describe_error
from afactors.store import ResponseRecord

SCHEMA = 1
"""The version of the request body; a node refuses any other (400 `unsupported_schema`)."""

TURNS_PATH = "/v1/cluster/turns"
CANCEL_RULE = "/v1/cluster/turns/<turn_id>/cancel"
FOLLOW_RULE = "/v1/cluster/turns/<turn_id>/follow"
PUSHES_PATH = "/v1/cluster/pushes"
REPLAY_PATH = "/v1/cluster/dead-letters/replay"
FORWARDED_BY = "afactors-forwarded-by"
"""The header marking a forwarded request with the id of the node that sent it (a receiver never forwards it)."""
NDJSON = "application/x-ndjson"

_FIELDS = frozenset({"schema", "channel", "stream", "background", "envelope"})


def cancel_path(turn_id: str) -> str:
    return f"{TURNS_PATH}/{turn_id}/cancel"


def follow_path(turn_id: str) -> str:
    return f"{TURNS_PATH}/{turn_id}/follow"


class WireError(ValueError):
    """A body that is not what the format says: `code` names the problem (`bad_json`, `unsupported_schema`,
    `bad_request`, `bad_envelope`, `bad_event`)."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.message, self.code = message, code


@attrs.frozen
class ForwardRequest:
    """A turn one node hands to the owner of its conversation. `channel`: the channel that received it (its
    metrics and background bookkeeping on the owner); `stream`: send the updates; `background`: a background turn
    (answered with its queued record, not its reply)."""

    envelope: Envelope
    channel: str
    stream: bool = False
    background: bool = False


@attrs.frozen
class Accepted:
    """The owner accepted the turn (it is in its inbox): from now on it runs whatever happens to the connection.
    `done`: it had ended before (its idempotency key was answered): the reply follows at once."""

    turn_id: str
    done: bool = False


@attrs.frozen
class Streamed:
    update: Update


@attrs.frozen
class Finished:
    """The turn ended; `stream_dropped`: the owner's stream fell behind and lost updates (the reply has them)."""

    reply: Reply
    stream_dropped: bool = False


@attrs.frozen
class Queued:
    """A background turn's record as the owner accepted it."""

    record: ResponseRecord


@attrs.frozen
class Ended:
    """A followed background turn has ended (its record is committed)."""

    turn_id: str


Event = Accepted | Streamed | Finished | Queued | Ended


def _object(data: bytes | str, what: str, code: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise WireError(f"the {what} is not valid JSON", "bad_json" if code == "bad_request" else code) from None
    if not isinstance(value, dict):
        raise WireError(f"the {what} must be a JSON object, not {type(value).__name__}", code)
    return value


def _request(data: bytes | str, fields: frozenset[str]) -> dict[str, Any]:
    """A request body: an object of schema `SCHEMA` with no field beyond `fields`."""
    body = _object(data, "request body", "bad_request")
    schema = body.get("schema")
    if schema != SCHEMA or isinstance(schema, bool):
        raise WireError(f"unsupported schema {schema!r}: this node speaks schema {SCHEMA}", "unsupported_schema")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise WireError(f"unknown field(s): {', '.join(unknown)}")
    return body


def encode_request(forward: ForwardRequest) -> bytes:
    body = {"schema": SCHEMA, "channel": forward.channel, "stream": forward.stream, "background": forward.background,
            "envelope": converter.unstructure(forward.envelope)}  # fmt: skip
    return orjson.dumps(body)


def decode_request(data: bytes | str) -> ForwardRequest:
    """The forwarded turn in a request body; `WireError` naming the first problem."""
    body = _request(data, _FIELDS)
    channel = body.get("channel")
    if not isinstance(channel, str) or not channel:
        raise WireError("'channel' must be a non-empty string")
    flags = {name: body.get(name, False) for name in ("stream", "background")}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise WireError(f"'{name}' must be a boolean")
    if "envelope" not in body:
        raise WireError("missing 'envelope'")
    if not isinstance(body["envelope"], dict):
        raise WireError("invalid envelope: it must be an object", "bad_envelope")
    try:
        envelope = converter.structure(body["envelope"], Envelope)
    except Exception as error:
        raise WireError(f"invalid envelope: {describe_error(error)}", "bad_envelope") from None
    return ForwardRequest(envelope, channel, flags["stream"], flags["background"])


@attrs.frozen
class PushRequest:
    """A channel's push into conversation `key` (`ChannelContext.push`), for its owner to queue: `reply` to
    `address` through `channel`, once per `push_id` however often it is sent."""

    key: ConversationKey
    channel: str
    push_id: str
    address: dict[str, Any]
    reply: Reply


_PUSH_FIELDS = frozenset({"schema", "channel", "key", "push_id", "address", "reply"})


def encode_push(push: PushRequest) -> bytes:
    body = {"schema": SCHEMA, "channel": push.channel, "key": converter.unstructure(push.key),
            "push_id": push.push_id, "address": push.address, "reply": converter.unstructure(push.reply)}  # fmt: skip
    return orjson.dumps(body)


def decode_push(data: bytes | str) -> PushRequest:
    """The push in a request body; `WireError` naming the first problem."""
    body = _request(data, _PUSH_FIELDS)
    for name in ("channel", "push_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise WireError(f"'{name}' must be a non-empty string")
    if not isinstance(body.get("address"), dict):
        raise WireError("'address' must be an object")
    values: dict[str, Any] = {}
    for name, kind in (("key", ConversationKey), ("reply", Reply)):
        if not isinstance(body.get(name), dict):
            raise WireError(f"'{name}' must be an object")
        try:
            values[name] = converter.structure(body[name], kind)
        except Exception as error:
            raise WireError(f"invalid {name}: {describe_error(error)}") from None
    return PushRequest(values["key"], body["channel"], body["push_id"], body["address"], values["reply"])


def encode_pushed(push_id: str, duplicate: bool) -> bytes:
    return orjson.dumps({"pushed": push_id, "duplicate": duplicate})


def decode_pushed(data: bytes) -> bool:
    """Whether the owner's answer to a push says it was queued before (a resend); `WireError` (`bad_event`) when
    it is not a push's answer."""
    body = _object(data, "answer", "bad_event")
    if not isinstance(body.get("pushed"), str) or not isinstance(duplicate := body.get("duplicate"), bool):
        raise WireError("a push's answer needs 'pushed' and a boolean 'duplicate'", "bad_event")
    return duplicate


@attrs.frozen
class ReplayRequest:
    """Dead letters of conversation `key` (their keys, from the "dead_letters" kind) for its owner to give another
    go."""

    key: ConversationKey
    dead_letters: tuple[str, ...]


_REPLAY_FIELDS = frozenset({"schema", "key", "dead_letters"})


def encode_replay(replay: ReplayRequest) -> bytes:
    body = {"schema": SCHEMA, "key": converter.unstructure(replay.key), "dead_letters": list(replay.dead_letters)}
    return orjson.dumps(body)


def decode_replay(data: bytes | str) -> ReplayRequest:
    """The replay in a request body; `WireError` naming the first problem."""
    body = _request(data, _REPLAY_FIELDS)
    if not isinstance(body.get("key"), dict):
        raise WireError("'key' must be an object")
    try:
        key = converter.structure(body["key"], ConversationKey)
    except Exception as error:
        raise WireError(f"invalid key: {describe_error(error)}") from None
    keys = body.get("dead_letters")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise WireError("'dead_letters' must be a non-empty list of dead-letter keys (non-empty strings)")
    return ReplayRequest(key, tuple(keys))


def encode_replayed(count: int) -> bytes:
    return orjson.dumps({"replayed": count})


def decode_replayed(data: bytes) -> int:
    """How many dead letters the owner's answer to a replay says it moved; `WireError` (`bad_event`) when it is not
    a replay's answer."""
    count = _object(data, "answer", "bad_event").get("replayed")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise WireError("a replay's answer needs 'replayed', a count", "bad_event")
    return count


def encode_follow(updates: bool) -> bytes:
    return orjson.dumps({"schema": SCHEMA, "updates": updates})


def decode_follow(data: bytes | str) -> bool:
    """Whether a follow request asks for the updates; `WireError` naming the first problem."""
    body = _request(data, frozenset({"schema", "updates"}))
    updates = body.get("updates", False)
    if not isinstance(updates, bool):
        raise WireError("'updates' must be a boolean")
    return updates


def encode_event(event: Event) -> bytes:
    """One NDJSON line (newline included)."""
    body: dict[str, Any]
    if isinstance(event, Accepted):
        body = {"accepted": event.turn_id, "done": True} if event.done else {"accepted": event.turn_id}
    elif isinstance(event, Streamed):
        body = {"update": converter.unstructure(event.update)}
    elif isinstance(event, Finished):
        body = {"reply": converter.unstructure(event.reply), "stream_dropped": event.stream_dropped}
    elif isinstance(event, Ended):
        body = {"ended": event.turn_id}
    else:
        body = {"record": converter.unstructure(event.record)}
    return orjson.dumps(body) + b"\n"


_EVENT_KINDS: dict[str, type] = {"update": Update, "reply": Reply, "record": ResponseRecord}


def decode_event(line: bytes | str) -> Event:
    """One line of the owner's answer; `WireError` (`bad_event`) when it is none of the five events."""
    body = _object(line, "event", "bad_event")
    for name in ("accepted", "ended"):
        if name in body and (not isinstance(body[name], str) or not body[name]):
            raise WireError(f"'{name}' must be a turn id", "bad_event")
    if "ended" in body:
        return Ended(body["ended"])
    if "accepted" in body:
        done = body.get("done", False)
        if not isinstance(done, bool):
            raise WireError("'done' must be a boolean", "bad_event")
        return Accepted(body["accepted"], done)
    kind = next((name for name in _EVENT_KINDS if name in body), None)
    if kind is None:
        raise WireError(f"unknown event with field(s) {', '.join(sorted(body)) or 'none'}", "bad_event")
    if not isinstance(body[kind], dict):
        raise WireError(f"invalid {kind}: it must be an object", "bad_event")
    try:
        value: Any = converter.structure(body[kind], _EVENT_KINDS[kind])
    except Exception as error:
        raise WireError(f"invalid {kind}: {describe_error(error)}", "bad_event") from None
    if isinstance(value, Update):
        return Streamed(value)
    if isinstance(value, Reply):
        dropped = body.get("stream_dropped", False)
        if not isinstance(dropped, bool):
            raise WireError("'stream_dropped' must be a boolean", "bad_event")
        return Finished(value, dropped)
    return Queued(value)


def encode_error(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def decode_error(data: bytes) -> tuple[str, str]:
    """The code and message of a refusal body; a body of another shape reads as `unknown` with its text."""
    try:
        error = orjson.loads(data).get("error")
        code, message = error["code"], error["message"]
        if isinstance(code, str) and isinstance(message, str):
            return code, message
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
        pass
    return "unknown", data[:200].decode("utf-8", "replace")
