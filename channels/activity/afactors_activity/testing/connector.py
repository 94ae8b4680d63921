"""A fake Bot Connector service: records every outbound call, checks its body and its token, answers like ABS."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import attrs
import trio
from microsoft_agents.activity import Activity
from pydantic import ValidationError
from quart import Response, jsonify, request
from quart_trio import QuartTrio

from afactors_activity.testing.identity import FakeIdentity
from afactors_activity.testing.loopback import serving


@attrs.frozen
class Call:
    """One request the fake received: `conversation` and `activity_id` are decoded from the URL path."""

    method: str
    conversation: str
    activity_id: str | None
    body: dict[str, Any]
    authorization: str | None
    status: int
    at: float

    @property
    def activity(self) -> Activity:
        """The body as the Bot Framework model."""
        return Activity.model_validate(self.body)

    @property
    def stream_info(self) -> dict[str, Any] | None:
        """The body's `streaminfo` entity, if any."""
        return next((e for e in self.body.get("entities") or () if e.get("type") == "streaminfo"), None)


class FakeConnector:
    """Serves `POST /v3/conversations/{id}/activities[/{activityId}]` and `PUT .../activities/{id}`.

    With an `identity`, a call must carry `Authorization: Bearer <a token that identity issued>` (else 401);
    without one, a call must carry no Authorization header at all. `fail_next(status, retry_after)` makes the
    next calls fail; `refuse_streaming` answers streaming chunks 403 as Teams does where it cannot stream.
    `invalid` collects every body the models rejected (a test asserts it stays empty).
    """

    def __init__(self, identity: FakeIdentity | None = None) -> None:
        self.identity = identity
        self.calls: list[Call] = []
        self.invalid: list[str] = []
        self.failures: deque[tuple[int, str | None]] = deque()
        self.refuse_streaming = False
        self.base_url = ""
        self._ids = itertools.count(1)
        self._changed = trio.Event()
        self.app = self._build()

    @property
    def service_url(self) -> str:
        return self.base_url + "/"

    def fail_next(self, status: int, retry_after: str | None = None, times: int = 1) -> None:
        self.failures.extend([(status, retry_after)] * times)

    def _build(self) -> QuartTrio:
        app = QuartTrio("fake-connector")

        @app.route("/v3/conversations/<conversation>/activities", methods=["POST"])
        async def send(conversation: str) -> tuple[Response, int]:
            return await self._handle(conversation, None)

        @app.route("/v3/conversations/<conversation>/activities/<activity_id>", methods=["POST", "PUT"])
        async def reply(conversation: str, activity_id: str) -> tuple[Response, int]:
            return await self._handle(conversation, activity_id)

        return app

    def _authorized(self, header: str | None) -> bool:
        if self.identity is None:
            return header is None
        scheme, _, token = (header or "").partition(" ")
        return scheme == "Bearer" and token in self.identity.issued

    async def _handle(self, conversation: str, activity_id: str | None) -> tuple[Response, int]:
        header = request.headers.get("Authorization")
        body = await request.get_json(force=True, silent=True)
        status, answer = 200, dict[str, Any]()
        if not self._authorized(header):
            status, answer = 401, {"error": {"code": "Unauthorized", "message": "bad token"}}
        elif not isinstance(body, dict):
            status, answer = 400, {"error": {"code": "BadArgument", "message": "not JSON"}}
        else:
            try:
                Activity.model_validate(body)
            except ValidationError as error:
                self.invalid.append(str(error))
                status, answer = 400, {"error": {"code": "BadArgument", "message": "not an Activity"}}
        headers: dict[str, str] = {}
        if status == 200 and self.refuse_streaming and _is_stream_chunk(body):
            status, answer = 403, {"error": {"code": "ContentStreamNotAllowed", "message": "streaming refused"}}
        if status == 200 and self.failures:
            status, retry_after = self.failures.popleft()
            answer = {"error": {"code": "ServiceError", "message": f"injected {status}"}}
            if retry_after is not None:
                headers["Retry-After"] = retry_after
        if status == 200:
            answer = {"id": body.get("id") if isinstance(body, dict) and body.get("id") else f"act-{next(self._ids)}"}
        recorded = body if isinstance(body, dict) else {}
        self.calls.append(Call(request.method, unquote(conversation), activity_id, recorded, header, status,
                               trio.current_time()))  # fmt: skip
        self._changed.set()
        self._changed = trio.Event()
        response = jsonify(answer)
        response.headers.update(headers)
        return response, status

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeConnector]:
        async with serving(self.app) as url:
            self.base_url = url
            yield self

    def delivered(self, kind: str = "message") -> list[Call]:
        """The successful calls whose activity type is `kind`."""
        return [c for c in self.calls if c.status == 200 and c.body.get("type") == kind]

    async def wait_until(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Wait (at most `within` seconds, else `trio.TooSlowError`) until `condition()` holds."""
        with trio.fail_after(within):
            while not condition():
                await self._changed.wait()


def _is_stream_chunk(body: dict[str, Any]) -> bool:
    entities = body.get("entities") or ()
    return any(e.get("type") == "streaminfo" and e.get("streamType") != "final" for e in entities)
