"""The timers HTTP route, `/v1/timers`: schedule (POST), list (GET), cancel (DELETE) with an API key.

The parsing and rendering are pure functions (`parse_schedule`, `timer_json`); `timer_routes` is the thin part.
Errors use the OpenAI-style envelope `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from quart import jsonify, request

from afactors.channel import Route, Unauthorized
from afactors.host._auth import ApiKeys
from afactors.host._routing import Router, RoutingError
from afactors.host._timers import Timers
from afactors.model import (
    ConversationKey,
    Identity,
    ReplyTarget,
    ResponseTarget,
    Timer,
    TimerError,
    converter,
    new_timer,
    parse_identity,
    parse_response_target,
)

PATH = "/v1/timers"
MAX_TIMERS_PER_REQUEST = 1000
_FIELDS = frozenset(
    {"conversation", "id", "at", "after", "cron", "timezone", "payload", "reply_to", "response_target", "user"}
)


@attrs.frozen
class HttpError(Exception):
    """A request the route refuses: HTTP status, message, the offending parameter and an error code."""

    status: int
    message: str
    param: str | None = None
    code: str = "invalid_request"


def parse_schedule(body: Any, tenant: str, now: float) -> list[tuple[ConversationKey, Timer]]:
    """A POST body: one timer object, or `{"timers": [...]}` with up to `MAX_TIMERS_PER_REQUEST`."""
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    if "timers" in body:
        items = body["timers"]
        if not isinstance(items, list) or not items:
            raise HttpError(400, "timers must be a non-empty array of timer objects", "timers")
        if len(items) > MAX_TIMERS_PER_REQUEST:
            raise HttpError(400, f"at most {MAX_TIMERS_PER_REQUEST} timers per request", "timers")
        return [_parse_one(item, tenant, now, f"timers[{n}].") for n, item in enumerate(items)]
    return [_parse_one(body, tenant, now, "")]


def _parse_one(item: Any, tenant: str, now: float, where: str) -> tuple[ConversationKey, Timer]:
    if not isinstance(item, dict):
        raise HttpError(400, "a timer must be a JSON object", where.rstrip(".") or None)
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})", where + unknown[0])
    conversation = _conversation(item.get("conversation"), where + "conversation")
    at = item.get("at")
    if isinstance(at, str):
        at = _iso_time(at, where + "at")
    try:
        timer = new_timer(
            now=now, at=at, after=item.get("after"), cron=_optional_str(item, "cron", where),
            timezone=_optional_str(item, "timezone", where), payload=item.get("payload"), id=item.get("id"),
            reply_to=_reply_to(item.get("reply_to"), where + "reply_to"),
            response_target=_response_target(item.get("response_target"), where + "response_target"),
            sender=_user(item.get("user"), where + "user"),
        )  # fmt: skip
    except TimerError as exc:
        raise HttpError(400, str(exc), where.rstrip(".") or None) from None
    return ConversationKey(tenant, conversation), timer


def _conversation(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 512:
        raise HttpError(400, "conversation must be a non-empty string of at most 512 characters", param)
    return value


def _optional_str(item: dict[str, Any], name: str, where: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise HttpError(400, f"{name} must be a string", where + name)
    return value


def _iso_time(value: str, param: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise HttpError(400, f"at {value!r} is not an ISO 8601 date and time", param) from None
    if when.tzinfo is None:
        raise HttpError(400, "at needs a UTC offset (e.g. 2026-12-24T09:00:00+01:00 or ...Z)", param)
    return when


def _reply_to(value: Any, param: str) -> ReplyTarget | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("channel"), str)
        or not isinstance(value.get("address", {}), dict)
        or set(value) - {"channel", "address"}
    ):
        raise HttpError(400, 'reply_to must be {"channel": name, "address": {...}}', param)
    return ReplyTarget(value["channel"], dict(value.get("address", {})))


def _response_target(value: Any, param: str) -> ResponseTarget | None:
    if value is None:
        return None
    try:
        return parse_response_target(value)
    except ValueError as exc:
        raise HttpError(400, str(exc), param, "invalid_response_target") from None


def _user(value: Any, param: str) -> Identity | None:
    if value is None:
        return None
    try:
        return parse_identity(value, "user")
    except ValueError as exc:
        raise HttpError(400, str(exc), param) from None


def check_targets(parsed: list[tuple[ConversationKey, Timer]], router: Router, many: bool) -> None:
    """Refuse a timer whose response target cannot be resolved now (it is resolved again when it fires)."""
    for n, (key, timer) in enumerate(parsed):
        if timer.response_target is None:
            continue
        try:
            router.for_timer(key.tenant, timer.response_target, timer.sender)
        except RoutingError as error:
            param = f"timers[{n}].response_target" if many else "response_target"
            raise HttpError(error.status, error.message, param, error.code) from None


def timer_json(key: ConversationKey, timer: Timer) -> dict[str, Any]:
    """A timer as the route shows it."""
    return {
        "object": "timer",
        "id": timer.id,
        "conversation": key.conversation,
        "due_at": timer.due_at,
        "due": datetime.fromtimestamp(timer.due_at, UTC).isoformat(),
        "cron": timer.cron,
        "timezone": timer.timezone,
        "payload": timer.payload,
        "reply_to": None if timer.reply_to is None else converter.unstructure(timer.reply_to),
        "response_target": None if timer.response_target is None else converter.unstructure(timer.response_target),
        "user": None if timer.sender is None else {"channel": timer.sender.channel, "user": timer.sender.user_id},
        "fired": timer.fired,
        "created_at": timer.created_at,
    }


def _error(exc: HttpError) -> Any:
    kind = {401: "authentication_error", 404: "not_found_error"}.get(exc.status, "invalid_request_error")
    body = {"error": {"message": exc.message, "type": kind, "param": exc.param, "code": exc.code}}
    return jsonify(body), exc.status


def timer_routes(timers: Timers, api_keys: ApiKeys, clock: Callable[[], float], router: Router) -> list[Route]:
    """The `/v1/timers` route of a host."""
    handlers: dict[str, Callable[[Timers, str], Awaitable[Any]]] = {
        "POST": functools.partial(_post, clock=clock, router=router),
        "GET": _get,
        "DELETE": _delete,
    }

    async def view() -> Any:
        try:
            try:
                tenant = api_keys.tenant(request.headers.get("Authorization"))
            except Unauthorized as exc:
                raise HttpError(401, str(exc), code="invalid_api_key") from None
            return await handlers[request.method](timers, tenant)
        except HttpError as exc:
            return _error(exc)

    view.__name__ = "timers"
    return [Route(PATH, view, methods=("GET", "POST", "DELETE"))]


async def _post(timers: Timers, tenant: str, *, clock: Callable[[], float], router: Router) -> Any:
    body = await request.get_json(force=True, silent=True)
    if body is None:
        raise HttpError(400, "the body must be JSON")
    many = isinstance(body, dict) and "timers" in body
    parsed = parse_schedule(body, tenant, clock())
    check_targets(parsed, router, many)
    await timers.schedule_many(parsed)
    rendered = [timer_json(key, timer) for key, timer in parsed]
    return jsonify({"object": "list", "data": rendered} if many else rendered[0]), 201


async def _get(timers: Timers, tenant: str) -> Any:
    key = ConversationKey(tenant, _conversation(request.args.get("conversation"), "conversation"))
    return jsonify({"object": "list", "data": [timer_json(key, timer) for timer in timers.list(key)]})


async def _delete(timers: Timers, tenant: str) -> Any:
    key = ConversationKey(tenant, _conversation(request.args.get("conversation"), "conversation"))
    timer_id = request.args.get("id")
    if not timer_id:
        raise HttpError(400, "id is required", "id")
    if not await timers.cancel(key, timer_id):
        raise HttpError(404, f"conversation {key.conversation!r} has no timer {timer_id!r}", "id", "timer_not_found")
    return jsonify({"object": "timer.deleted", "id": timer_id, "deleted": True})
