"""The OIDC identity linker: sign in with an OpenID Connect provider (authorization code + PKCE) to link a
channel identity to verified claims.

`begin` (for a channel's `/login`, or `POST /v1/identity/oidc/start`) makes a `state` signed with the host's key
and bound to the identity, a nonce and a PKCE verifier, keeps the verifier and nonce under the state's digest
(kind `tokens`, key `oidc/<sha256>`, until `flow_ttl`), and returns the provider's authorization URL. The
provider sends the browser to `GET /v1/identity/oidc/callback`, which checks the state, spends the pending row
(a replayed callback finds none), exchanges the code with the verifier, verifies the ID token against the
provider's JWKS (issuer, audience, expiry, nonce) and records the claims (`IdentityService.link_claims`, which
merges identities presenting the same verified claim).

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import hashlib
import html
import logging
import secrets
import time
from collections.abc import Callable, Collection
from typing import Any

import trio
from quart import Response, request

from afactors.channel import Route
from afactors.host._auth import ApiKeys
from afactors.host._identity_routes import parse_body
from afactors.host._json_api import BadRequest, guarded, json_response
from afactors.identity import IdentityService, LinkFailed
from afactors.identity.oidc import (
    OidcConfig,
    OidcError,
    authorization_url,
    merge_keys,
    open_state,
    pkce_pair,
    recorded_claims,
    sign_state,
    verify_id_token,
)
from afactors.model import Identity
from afactors.store import Delete, Expect, Put, Store, TokenRecord

log = logging.getLogger("afactors.identity")

CALLBACK_PATH = "/v1/identity/oidc/callback"
_HTTP_TIMEOUT = 10.0
_STATUS = {"provider_unreachable": 502, "policy": 403}


def _refused(error: Exception) -> BadRequest | None:
    """The answer to a sign-in step that failed (`guarded`'s translation of an `OidcError`)."""
    return BadRequest(error.message, _STATUS.get(error.code, 400), error.code) if isinstance(error, OidcError) else None


def pending_key(state: str) -> str:
    return f"oidc/{hashlib.sha256(state.encode()).hexdigest()}"


def _page(title: str, message: str, status: int) -> Response:
    body = (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>")  # fmt: skip
    return Response(body, status=status, content_type="text/html; charset=utf-8")


class OidcLinker:
    """One provider; `public_url()` is the URL browsers reach this host at (for the redirect URI)."""

    def __init__(
        self, config: OidcConfig, identity: IdentityService, store: Store, api_keys: ApiKeys,
        channels: Collection[str], asserted: Collection[str], public_url: Callable[[], str],
    ) -> None:  # fmt: skip
        self.config, self.identity, self.store, self.api_keys = config, identity, store, api_keys
        self.channels, self.asserted, self._public_url = channels, asserted, public_url
        self._discovery: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._spend = trio.Lock()

    @property
    def redirect_uri(self) -> str:
        return (self.config.public_url or self._public_url()).rstrip("/") + CALLBACK_PATH

    # -- the provider ----------------------------------------------------------------------------------------

    async def _get(self, url: str) -> dict[str, Any]:
        import httpx  # here, not at the top: a host without OIDC starts without it (issue 16 startup)

        try:
            async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
                response = await http.get(url)
            body = response.json() if response.is_success else None
        except (httpx.HTTPError, ValueError) as error:
            raise OidcError(f"The sign-in provider could not be reached ({type(error).__name__}).",
                            "provider_unreachable") from None  # fmt: skip
        if not isinstance(body, dict):
            raise OidcError(f"The sign-in provider answered {response.status_code}.", "provider_unreachable")
        return body

    async def discovery(self) -> dict[str, Any]:
        """The provider's metadata (cached); its `issuer` must be the configured one."""
        if self._discovery is None:
            found = await self._get(self.config.issuer.rstrip("/") + "/.well-known/openid-configuration")
            needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            if any(not isinstance(found.get(k), str) for k in needed) or found["issuer"] != self.config.issuer:
                raise OidcError("The sign-in provider's metadata is not usable.", "provider_unreachable")
            self._discovery = found
        return self._discovery

    async def _keys(self, refresh: bool = False) -> dict[str, Any]:
        if self._jwks is None or refresh:
            self._jwks = await self._get((await self.discovery())["jwks_uri"])
        return self._jwks

    # -- the flow --------------------------------------------------------------------------------------------

    async def begin(self, tenant: str, identity: Identity) -> str:
        """The authorization URL that links `identity` once the person signs in (valid `flow_ttl` seconds)."""
        meta = await self.discovery()
        now = time.time()
        expires = now + self.config.flow_ttl
        payload = {"t": tenant, "c": identity.channel, "u": identity.user_id, "x": expires,
                   "j": secrets.token_urlsafe(12)}  # fmt: skip
        state = sign_state(self.config.state_secret, payload)
        verifier, challenge = pkce_pair()
        nonce = secrets.token_urlsafe(16)
        key = pending_key(state)
        data = {"verifier": verifier, "nonce": nonce, "channel": identity.channel, "native_id": identity.user_id}
        pending = TokenRecord("oidc", tenant, f"{identity.channel}/{identity.user_id}", key.split("/", 1)[1],
                              expires, now, data)  # fmt: skip
        await self.store.commit([Put("tokens", key, pending)])
        return authorization_url(meta["authorization_endpoint"], self.config, self.redirect_uri, state, nonce,
                                 challenge)  # fmt: skip

    async def complete(self, state: str, code: str | None, error: str | None) -> tuple[Identity, dict[str, Any]]:
        """Check the callback, spend its pending row, exchange the code and link the verified claims; the linked
        identity and its verified claims. Raises `OidcError` or `LinkFailed`; nothing is linked then."""
        payload = open_state(self.config.state_secret, state, time.time())
        async with self._spend:
            pending: TokenRecord | None = self.store.get("tokens", pending_key(state))
            if (
                pending is None
                or pending.purpose != "oidc"
                or not await self.store.commit(
                    [Delete("tokens", pending_key(state))], expect=[Expect("tokens", pending_key(state), pending)]
                )  # on condition: of two nodes completing one sign-in, one spends it
            ):
                raise OidcError("This sign-in was already completed or is unknown; ask for a new link.", "replayed")
        identity = Identity(str(pending.data["channel"]), str(pending.data["native_id"]))
        if (pending.tenant, identity.channel, identity.user_id) != (payload.get("t"), payload.get("c"),
                                                                    payload.get("u")):  # fmt: skip
            raise OidcError("This sign-in link is not valid.", "invalid_state")
        if error is not None:
            raise OidcError(f"The sign-in provider refused: {error}.", "provider_error")
        if not code:
            raise OidcError("The provider sent no authorization code.", "provider_error")
        id_token = await self._exchange(code, str(pending.data["verifier"]))
        claims = await self._verified(id_token, str(pending.data["nonce"]))
        recorded = recorded_claims(claims, self.config)
        await self.identity.link_claims(pending.tenant, identity, recorded, merge_keys(recorded, self.config))
        return identity, recorded

    async def _exchange(self, code: str, verifier: str) -> str:
        meta = await self.discovery()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": verifier, "client_id": self.config.client_id}  # fmt: skip
        if self.config.client_secret is not None:
            form["client_secret"] = self.config.client_secret
        import httpx

        try:
            async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
                response = await http.post(meta["token_endpoint"], data=form)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(f"The sign-in provider could not be reached ({type(exc).__name__}).",
                            "provider_unreachable") from None  # fmt: skip
        if not response.is_success or not isinstance(body, dict):
            reason = body.get("error") if isinstance(body, dict) else None
            raise OidcError(f"The sign-in provider refused the code ({reason or response.status_code}).",
                            "provider_error")  # fmt: skip
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("The sign-in provider sent no ID token.", "provider_error")
        return id_token

    async def _verified(self, id_token: str, nonce: str) -> dict[str, Any]:
        issuer = (await self.discovery())["issuer"]
        try:
            return verify_id_token(id_token, await self._keys(), self.config, issuer, nonce, time.time())
        except OidcError as error:
            if "do not include" not in error.message:
                raise
            # the provider may have rotated its keys: fetch them once more
            return verify_id_token(id_token, await self._keys(refresh=True), self.config, issuer, nonce, time.time())

    # -- routes ----------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/v1/identity/oidc/start", guarded(self.start, _refused), methods=("POST",)),
            Route(CALLBACK_PATH, self.callback, methods=("GET",)),
        ]

    async def start(self) -> Response:
        """`POST /v1/identity/oidc/start {"channel", "user"}` (API key): the URL the user signs in at."""
        raw = await request.get_json(force=True, silent=True)  # read the body first, even to refuse it
        tenant = self.api_keys.tenant(request.headers.get("Authorization"))
        body = parse_body(raw, ("channel", "user"))
        if body["channel"] not in self.asserted or body["channel"] not in self.channels:
            raise BadRequest(f"Invalid 'channel': {body['channel']!r} cannot sign in over HTTP here.", param="channel")
        url = await self.begin(tenant, Identity(body["channel"], body["user"]))
        return json_response({"object": "identity.oidc_start", "url": url, "expires_in": int(self.config.flow_ttl)})

    async def callback(self) -> Response:
        """The provider's redirect: a page saying the account is linked, or why not (4xx; 502 provider down)."""
        args = request.args
        state = args.get("state")
        if not state:
            return _page("Sign-in failed", "The request has no 'state'; start the sign-in again.", 400)
        try:
            identity, claims = await self.complete(state, args.get("code"), args.get("error"))
        except (OidcError, LinkFailed) as failed:
            log.info("oidc sign-in refused (%s): %s", failed.code, failed.message)
            return _page("Sign-in failed", failed.message, _STATUS.get(failed.code, 400))
        who = claims.get("email") or claims.get("name") or "your account"
        return _page("Signed in", f"Linked {identity.channel} with {who}. You can close this page.", 200)
