"""A fake Microsoft Entra / Bot Service identity: OpenID metadata, JWKS, token endpoint, and token minting (B-22)."""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from quart import Response, jsonify, request
from quart_trio import QuartTrio

from afactors_activity.testing.loopback import serving

ISSUER = "https://api.botframework.com"
KID = "fake-signing-key"
ENDORSEMENTS = ["msteams", "webchat", "directline", "emulator"]
TOKEN_KINDS = ("valid", "expired", "wrong_audience", "wrong_issuer", "mismatched_serviceurl", "bad_signature",
               "alg_none", "unknown_key")  # fmt: skip
"""What `FakeIdentity.token` can mint: one good token and every way a token can be wrong."""


@functools.cache
def _signing_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The fake's signing key and a rogue one (for bad signatures), made once per process (RSA is slow)."""
    return tuple(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))  # type: ignore[return-value]


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64_json(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeIdentity:
    """Serves `/v1/.well-known/openidconfiguration`, `/v1/.well-known/keys` and `/oauth2/v2.0/token`.

    `token(...)` mints inbound tokens for `app_id`; the token endpoint hands out access tokens for the bot's
    client credentials (`app_id`/`app_password`) and remembers them in `issued` for `FakeConnector` to check.
    """

    def __init__(self, app_id: str, app_password: str) -> None:
        self.app_id, self.app_password = app_id, app_password
        self._key, self._rogue = _signing_keys()
        numbers = self._key.public_key().public_numbers()
        self.jwk = {"kty": "RSA", "use": "sig", "kid": KID, "n": _b64(numbers.n), "e": _b64(numbers.e),
                    "endorsements": ENDORSEMENTS}  # fmt: skip
        self.issued: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.key_fetches = 0
        self.token_lifetime = 3600
        self.base_url = ""
        self.app = self._build()

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/v1/.well-known/openidconfiguration"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/botframework.com/oauth2/v2.0/token"

    def _build(self) -> QuartTrio:
        app = QuartTrio("fake-identity")

        @app.get("/v1/.well-known/openidconfiguration")
        async def metadata() -> Response:
            return jsonify({"issuer": ISSUER, "jwks_uri": f"{self.base_url}/v1/.well-known/keys",
                            "id_token_signing_alg_values_supported": ["RS256"]})  # fmt: skip

        @app.get("/v1/.well-known/keys")
        async def keys() -> Response:
            self.key_fetches += 1
            return jsonify({"keys": [self.jwk]})

        @app.post("/botframework.com/oauth2/v2.0/token")
        async def token() -> tuple[Response, int]:
            form = {key: value for key, value in (await request.form).items()}
            self.token_requests.append(form)
            if (
                form.get("grant_type") != "client_credentials"
                or form.get("scope") != "https://api.botframework.com/.default"
            ):
                return jsonify({"error": "invalid_request"}), 400
            if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_password:
                return jsonify({"error": "invalid_client"}), 401
            access = secrets.token_urlsafe(24)
            self.issued.add(access)
            return jsonify({"token_type": "Bearer", "expires_in": self.token_lifetime, "access_token": access}), 200

        return app

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeIdentity]:
        async with serving(self.app) as url:
            self.base_url = url
            yield self

    def token(self, service_url: str, kind: str = "valid", **claims: Any) -> str:
        """A Bot Service token for the bot, of one of `TOKEN_KINDS`; `claims` override or add claims."""
        now = int(time.time())
        body: dict[str, Any] = {"iss": ISSUER, "aud": self.app_id, "serviceurl": service_url, "nbf": now - 5,
                                "exp": now + 3600, "iat": now - 5}  # fmt: skip
        key, headers = self._key, {"kid": KID}
        if kind == "expired":
            body["exp"] = now - 3600
        elif kind == "wrong_audience":
            body["aud"] = "someone-else"
        elif kind == "wrong_issuer":
            body["iss"] = "https://evil.example"
        elif kind == "mismatched_serviceurl":
            body["serviceurl"] = "https://forged.example/"
        elif kind == "bad_signature":
            key = self._rogue
        elif kind == "unknown_key":
            headers = {"kid": "not-a-known-key"}
        elif kind != "valid" and kind != "alg_none":
            raise ValueError(f"unknown token kind {kind!r}")
        body.update(claims)
        if kind == "alg_none":
            head = {"alg": "none", "typ": "JWT", "kid": KID}
            return f"{_b64_json(json.dumps(head).encode())}.{_b64_json(json.dumps(body).encode())}."
        return jwt.encode(body, key, algorithm="RS256", headers=headers)
