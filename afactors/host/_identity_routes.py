"""HTTP routes of the identity service, for channels without chat commands (Responses, Invocations) and for
operators. Bodies are JSON; errors use the OpenAI error envelope `{"error": {"message", "type", "code"}}`.

The caller's API key vouches for the users it names: only the channels in `asserted` (by default `responses`
and `invocations`, whose users the calling application authenticates) may be named when asking for or
redeeming a code. A Telegram user can only act from Telegram.
"""

from __future__ import annotations

from collections.abc import Collection

from quart import Response, request

from afactors.channel import Route
from afactors.host._auth import ApiKeys
from afactors.host._json_api import BadRequest, View, error_response, guarded, json_body, json_response
from afactors.identity import IdentityService, LinkFailed
from afactors.model import Identity

_STATUS = {"invalid_code": 400, "expired_code": 400, "rate_limited": 429, "policy": 403}


def _link_failed(error: Exception) -> BadRequest | None:
    if isinstance(error, LinkFailed):
        return BadRequest(error.message, _STATUS.get(error.code, 400), error.code)
    return None


def parse_body(body: object, fields: tuple[str, ...]) -> dict[str, str]:
    """The named string fields of a JSON body (pure); raises `BadRequest` naming the first bad one."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    out: dict[str, str] = {}
    for field in fields:
        value = body.get(field)
        if value is None:
            raise BadRequest(f"Missing required parameter: '{field}'.", param=field, code="missing_required_parameter")
        if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
            raise BadRequest(f"Invalid '{field}': expected a non-empty string of at most 256 printable characters.",
                              param=field)  # fmt: skip
        out[field] = value
    return out


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
        return guarded(view, _link_failed)

    def _tenant(self) -> str:
        return self.api_keys.tenant(request.headers.get("Authorization"))

    async def _body(self, *fields: str) -> dict[str, str]:
        return parse_body(await json_body(), fields)

    def _speaker(self, channel: str, user: str) -> Identity:
        """A user the API key may speak for."""
        if channel not in self.asserted or channel not in self.channels:
            names = ", ".join(sorted(set(self.asserted) & set(self.channels))) or "none"
            raise BadRequest(f"Invalid 'channel': {channel!r} cannot be linked over HTTP here (allowed: {names}).",
                              param="channel")  # fmt: skip
        return Identity(channel, user)

    async def link_code(self) -> Response:
        tenant = self._tenant()
        body = await self._body("channel", "user")
        code = await self.identity.issue_code(tenant, self._speaker(body["channel"], body["user"]))
        return json_response({"object": "identity.link_code", "code": code.code, "expires_at": int(code.expires_at)})

    async def link(self) -> Response:
        tenant = self._tenant()
        body = await self._body("channel", "user", "code")
        record = await self.identity.redeem(tenant, self._speaker(body["channel"], body["user"]), body["code"])
        return json_response({"object": "identity.link", "linked": sorted(record.members)})

    async def revoke(self, channel: str, user: str) -> Response:
        """Operator revoke: detach a channel identity from whatever it was linked to."""
        tenant = self._tenant()
        revoked = await self.identity.unlink(tenant, channel, user, action="revoke")
        return json_response({"object": "identity.revoke", "revoked": revoked})

    async def new_conversation(self) -> Response:
        tenant = self._tenant()
        body = await self._body("channel", "user")
        await self.identity.new_conversation(tenant, self._speaker(body["channel"], body["user"]))
        return json_response({"object": "identity.new_conversation", "ok": True})

    async def audit(self, channel: str, user: str) -> Response:
        tenant = self._tenant()
        record = self.identity.lookup(tenant, channel, user)
        if record is None:
            return error_response(f"No identity for {channel}/{user}.", 404, "not_found")
        rows = [
            {"action": a.action, "at": a.at, "channel": a.channel, "user": a.native_id, "detail": a.detail}
            for a in self.identity.audit(tenant, record.key)
        ]
        seen = {ref: {"via": m.via, "linked_at": m.linked_at, "last_seen_at": m.last_seen_at}
                for ref, m in sorted(record.members.items())}  # fmt: skip
        return json_response({"object": "list", "linked": sorted(record.members), "last": record.last, "members": seen,
                      "data": rows})  # fmt: skip
