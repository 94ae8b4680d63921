"""Continuation tokens: an opaque, pollable handle on a turn that runs without its caller (a background turn).

Any channel asks for one through `ChannelContext.run_token(turn_id, tenant)` once its turn is accepted; the
caller polls `GET /v1/runs/<token>` with the tenant's API key for the turn's status and, when it has ended, its
reply. Only the token's SHA-256 is stored (kind `tokens`, key `run/<digest>`, beside link codes under `link/`),
with its tenant, turn id and expiry, so it survives restarts; it expires `ttl` seconds after it was issued
(the poll answers 410) and retention deletes it after that (404).

Must not import: `afactors.host._host` or `afactors.host.context` (they import this).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from quart import Response, request

from afactors.actors import ActorSystem
from afactors.channel import Route, RunToken
from afactors.host._auth import ApiKeys
from afactors.host._json_api import error_response, guarded, json_response
from afactors.model import converter
from afactors.store import Put, ResponseRecord, Store, TokenRecord

PURPOSE = "run"
PREFIX = "run_"
DEFAULT_TTL = 86_400.0


def token_key(token: str) -> str:
    """The store key of a token: only its digest is kept."""
    return f"run/{hashlib.sha256(token.encode()).hexdigest()}"


def run_object(token: str, held: TokenRecord, record: ResponseRecord | None) -> dict[str, Any]:
    """What a poll answers (pure): status, times, and once the turn has ended its reply. `record` None: the
    turn is held by the actor system but has no record yet (a turn that was not started in the background)."""
    body: dict[str, Any] = {
        "object": "run",
        "token": token,
        "turn_id": held.key,
        "status": "in_progress" if record is None else record.status,
        "created_at": held.created_at,
        "expires_at": held.expires_at,
        "completed_at": None if record is None else record.completed_at,
        "output_text": None,
        "output": None,
        "error": None,
    }
    if record is not None and record.ended:
        body["output_text"] = "".join(m.text for m in record.output if m.role == "assistant")
        body["output"] = converter.unstructure(record.output)
        if record.error is not None:
            body["error"] = {"code": record.error.code, "message": record.error.message}
    return body


class RunTokens:
    """Issues tokens for turns and answers polls; `clock` is `time.time` (replaceable in tests)."""

    def __init__(
        self, store: Store, system: ActorSystem, api_keys: ApiKeys, *, ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        if ttl <= 0:
            raise ValueError(f"run_token_ttl must be greater than 0 seconds, not {ttl!r}")
        self._store, self._system, self._api_keys = store, system, api_keys
        self.ttl, self.clock = ttl, clock

    def _known(self, turn_id: str, tenant: str) -> tuple[bool, ResponseRecord | None]:
        """Whether `tenant` has the turn (recorded, or queued or running without a record yet), and its record."""
        record = self._system.record(turn_id)
        if record is not None:
            return record.tenant == tenant, record if record.tenant == tenant else None
        pending = self._system.pending(turn_id)
        return pending is not None and pending.tenant == tenant, None

    async def issue(self, turn_id: str, tenant: str) -> RunToken:
        """A new token for a turn of `tenant`; raises LookupError when the host has no such turn of the tenant."""
        if not self._known(turn_id, tenant)[0]:
            raise LookupError(f"no turn {turn_id!r} of this tenant")
        token = PREFIX + secrets.token_urlsafe(24)
        now = self.clock()
        key = token_key(token)
        held = TokenRecord(PURPOSE, tenant, turn_id, key.split("/", 1)[1], now + self.ttl, now)
        await self._store.commit([Put("tokens", key, held)])
        return RunToken(token, turn_id, held.expires_at)

    def routes(self) -> list[Route]:
        return [Route("/v1/runs/<token>", guarded(self.poll), methods=("GET",))]

    async def poll(self, token: str) -> Response:
        """`GET /v1/runs/<token>`: 200 with the run, 401, 404 (unknown, another tenant's, removed), 410 expired."""
        tenant = self._api_keys.tenant(request.headers.get("Authorization"))
        held: TokenRecord | None = self._store.get("tokens", token_key(token)) if token.startswith(PREFIX) else None
        if held is None or held.purpose != PURPOSE or held.tenant != tenant:
            return error_response("No run with that token (unknown, or removed after it expired).", 404, "not_found")
        if held.expires_at <= self.clock():
            when = datetime.fromtimestamp(held.expires_at, UTC).isoformat(timespec="seconds")
            message = f"This run token expired at {when}; a token is valid for {self.ttl:.0f} s after the run started."
            return error_response(message, 410, "token_expired")
        known, record = self._known(held.key, tenant)
        if not known:
            return error_response("The run's record is gone (removed by retention).", 404, "not_found")
        return json_response(run_object(token, held, record))
