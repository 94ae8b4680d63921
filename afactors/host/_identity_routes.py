"""HTTP routes of the identity service, for channels without chat commands (Responses, Invocations) and for
operators. Bodies are JSON; errors use the OpenAI error envelope `{"error": {"message", "type", "code"}}`.

The caller's API key vouches for the users it names: only the channels in `asserted` (by default `responses`
and `invocations`, whose users the calling application authenticates) may be named when asking for or
redeeming a code. A Telegram user can only act from Telegram.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from quart import Response, request

from afactors.channel import Route, Unauthorized
from afactors.host._auth import ApiKeys
from afactors.identity import IdentityService, LinkFailed
from afactors.model import Identity

_STATUS = {"invalid_code": 400, "expired_code": 400, "rate_limited": 429, "policy": 403}


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code, self.param = message, status, code, param


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(message: str, status: int, code: str, param: str | None = None) -> Response:
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    return _json({"error": {"message": message, "type": kind, "code": code, "param": param}}, status)


def parse_body(body: object, fields: tuple[str, ...]) -> dict[str, str]:
    """The named string fields of a JSON body (pure); raises `_BadRequest` naming the first bad one."""
    if not isinstance(body, dict):
        raise _BadRequest("The request body must be a JSON object.")
    out: dict[str, str] = {}
    for field in fields:
        value = body.get(field)
        if value is None:
            raise _BadRequest(f"Missing required parameter: '{field}'.", param=field, code="missing_required_parameter")
        if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
            raise _BadRequest(f"Invalid '{field}': expected a non-empty string of at most 256 printable characters.",
                              param=field)  # fmt: skip
        out[field] = value
    return out


View = Callable[..., Awaitable[Response]]


class IdentityRoutes:
    """The views; `channels` are the host's channel names, `asserted` those the API key may speak for."""

    def __init__(
        self, identity: IdentityService, api_keys: ApiKeys, channels: Collection[str], asserted: Collection[str]
    ) -> None:
        self.identity, self.api_keys, self.channels, self.asserted = identity, api_keys, channels, asserted

    def routes(self) -> list[Route]:
        g = self._guarded
        return [
            Route("/v1/identity/link_codes", g(self.link_code), methods=("POST",)),
            Route("/v1/identity/links", g(self.link), methods=("POST",)),
            Route("/v1/identity/links/<channel>/<path:user>", g(self.revoke), methods=("DELETE",)),
            Route("/v1/identity/new_conversation", g(self.new_conversation), methods=("POST",)),
            Route("/v1/identity/audit/<channel>/<path:user>", g(self.audit), methods=("GET",)),
        ]

    @staticmethod
    def _guarded(view: View) -> View:
        async def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                return await view(*args, **kwargs)
            except Unauthorized as error:
                return _error(str(error), 401, "invalid_api_key")
            except _BadRequest as error:
                return _error(error.message, error.status, error.code, error.param)
            except LinkFailed as error:
                return _error(error.message, _STATUS.get(error.code, 400), error.code)

        wrapper.__name__ = view.__name__
        return wrapper

    def _tenant(self) -> str:
        return self.api_keys.tenant(request.headers.get("Authorization"))

    async def _body(self, *fields: str) -> dict[str, str]:
        try:
            body = json.loads(await request.get_data(as_text=True) or "null")
        except ValueError:
            raise _BadRequest("The request body is not valid JSON.") from None
        return parse_body(body, fields)

    def _speaker(self, channel: str, user: str) -> Identity:
        """A user the API key may speak for."""
        if channel not in self.asserted or channel not in self.channels:
            names = ", ".join(sorted(set(self.asserted) & set(self.channels))) or "none"
            raise _BadRequest(f"Invalid 'channel': {channel!r} cannot be linked over HTTP here (allowed: {names}).",
                              param="channel")  # fmt: skip
        return Identity(channel, user)

    async def link_code(self) -> Response:
        tenant = self._tenant()
        body = await self._body("channel", "user")
        code = await self.identity.issue_code(tenant, self._speaker(body["channel"], body["user"]))
        return _json({"object": "identity.link_code", "code": code.code, "expires_at": int(code.expires_at)})

    async def link(self) -> Response:
        tenant = self._tenant()
        body = await self._body("channel", "user", "code")
        record = await self.identity.redeem(tenant, self._speaker(body["channel"], body["user"]), body["code"])
        return _json({"object": "identity.link", "linked": sorted(record.members)})

    async def revoke(self, channel: str, user: str) -> Response:
        """Operator revoke: detach a channel identity from whatever it was linked to."""
        tenant = self._tenant()
        revoked = await self.identity.unlink(tenant, channel, user, action="revoke")
        return _json({"object": "identity.revoke", "revoked": revoked})

    async def new_conversation(self) -> Response:
        tenant = self._tenant()
        body = await self._body("channel", "user")
        await self.identity.new_conversation(tenant, self._speaker(body["channel"], body["user"]))
        return _json({"object": "identity.new_conversation", "ok": True})

    async def audit(self, channel: str, user: str) -> Response:
        tenant = self._tenant()
        record = self.identity.lookup(tenant, channel, user)
        if record is None:
            return _error(f"No identity for {channel}/{user}.", 404, "not_found")
        rows = [
            {"action": a.action, "at": a.at, "channel": a.channel, "user": a.native_id, "detail": a.detail}
            for a in self.identity.audit(tenant, record.key)
        ]
        return _json({"object": "list", "linked": sorted(record.members), "data": rows})
