"""The admin HTTP API of a running host: off unless `HostConfig.admin_key` is set, and only with that key.

The same operations as the operator commands (`afactors.admin`) on the live store:

    GET    /admin/inspect                           counts, sizes, conversations
    GET    /admin/conversations/<tenant>/<conv>     one conversation (404 when unknown)
    DELETE /admin/conversations/<tenant>/<conv>     purge it (409 while its actor has work)
    GET    /admin/dead-letters[?key=K]              list (or show one)
    POST   /admin/dead-letters/replay?key=K         replay one (on a cluster node, by its conversation's owner:
                                                    handed to it; without a cluster secret 409 `not_owner`)
    DELETE /admin/dead-letters[?key=K]              purge one (or all)
    GET    /admin/timers[?conversation=T/C]         list timers (of one conversation)
    DELETE /admin/timers?conversation=T/C&id=I      cancel one pending timer
    DELETE /admin/timers[?conversation=T/C]         purge timers (of one conversation, or all)

Errors are `{"error": {"type", "message"}}` with 400, 401, 404, 409 or 503 (the owner could not be reached).

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from quart import Response, request

from afactors import admin
from afactors.actors import ActorSystem, ActorUnavailable, NotOwner
from afactors.channel import Route
from afactors.model import ConversationKey
from afactors.store import Store


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data), status=status, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _error(status: int, kind: str, message: str) -> Response:
    return _json({"error": {"type": kind, "message": message}}, status)


def admin_routes(store: Store, system: ActorSystem, key: str, where_owned: admin.ConversationReplay) -> list[Route]:
    """The admin routes, each checking `Authorization: Bearer <key>` in constant time; `where_owned`: how a
    conversation's dead letters are given another go (on a cluster node, by its owner)."""
    expected = f"Bearer {key}".encode()

    def guarded(view: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        async def checked(**kwargs: Any) -> Response:
            given = (request.headers.get("Authorization") or "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "unauthorized", "the admin API needs 'Authorization: Bearer <admin key>'")
            return await view(**kwargs)

        checked.__name__ = f"admin_{view.__name__}"
        return checked

    async def inspect() -> Response:
        return _json(admin.inspect_report(store))

    async def conversation(tenant: str, conversation: str) -> Response:
        path = f"{tenant}/{conversation}"
        if request.method == "DELETE":
            key_ = ConversationKey(tenant, conversation)
            if any(info.key == key_ for info in system.actors()) and not system.passivate(key_):
                return _error(409, "conversation_busy", f"{path} has a turn queued or running; try again later")
            return _json(await admin.purge_conversation(store, path))
        report = admin.conversation_report(store, path)
        return _error(404, "not_found", f"no conversation {path!r}") if report is None else _json(report)

    async def dead_letters() -> Response:
        one = request.args.get("key")
        if request.method == "DELETE":
            return _json({"purged": await admin.purge_dead_letters(store, None if one is None else [one])})
        found = admin.dead_letters(store, one)
        if one is not None and not found:
            return _error(404, "not_found", f"no dead letter {one!r}")
        return _json(found)

    async def timers() -> Response:
        path, timer_id = request.args.get("conversation"), request.args.get("id")
        try:
            if timer_id is not None and path is None:
                raise ValueError("id needs conversation (TENANT/CONVERSATION) beside it")
            if path is not None and not admin.has_conversation(store, path):
                return _error(404, "not_found", f"no conversation {path!r}")
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        if request.method == "GET":
            return _json(admin.timers(store, path))
        if timer_id is None:
            return _json({"purged": await admin.purge_timers(store, path=path)})
        if path is None or not await admin.cancel_timer(store, path, timer_id):
            return _error(404, "not_found", f"{path} has no pending timer {timer_id!r}")
        return _json({"cancelled": 1})

    async def replay() -> Response:
        one = request.args.get("key", "")
        try:  # a conversation's rows are written by its owner (this node under its lease, or handed to it)
            if not await admin.replay_dead_letter(store, one, where_owned):
                return _error(404, "not_found", f"no dead letter {one!r}")
        except NotOwner as error:
            return _error(409, "not_owner", f"{error}; replay it on that node")
        except ActorUnavailable as error:
            return _error(503, "unavailable", str(error))
        return _json({"replayed": 1})

    return [
        Route("/admin/inspect", guarded(inspect), methods=("GET",)),
        Route("/admin/conversations/<tenant>/<path:conversation>", guarded(conversation), methods=("GET", "DELETE")),
        Route("/admin/dead-letters", guarded(dead_letters), methods=("GET", "DELETE")),
        Route("/admin/dead-letters/replay", guarded(replay), methods=("POST",)),
        Route("/admin/timers", guarded(timers), methods=("GET", "DELETE")),
    ]
