"""A small OpenID Connect provider on loopback for the OIDC linker tests (authorization code + PKCE, RS256 ID
tokens, JWKS). `login_as` says who signs in next; `tamper` makes the next ID token wrong in one way."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import attrs
import jwt
import trio
from cryptography.hazmat.primitives.asymmetric import rsa
from quart import Response, jsonify, redirect, request
from quart_trio import QuartTrio

from afactors.host._server import serve_app, server_config

CLIENT_ID = "afactors-test"
CLIENT_SECRET = "s3cret"


@attrs.define
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    claims: dict[str, Any]


@functools.cache
def _rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Provider:
    def __init__(self) -> None:
        self.key, self.other_key = _rsa_key("provider"), _rsa_key("attacker")
        self.issuer = ""
        self.login_as: dict[str, Any] = {"sub": "user-1", "email": "alice@example.com", "email_verified": True}
        self.tamper: str | None = None
        self.grants: dict[str, Grant] = {}
        self.token_calls = 0

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": grant.client_id, "iat": now, "exp": now + 300, "nonce": grant.nonce,
                  **grant.claims}  # fmt: skip
        key = self.key
        tamper, self.tamper = self.tamper, None
        if tamper == "audience":
            claims["aud"] = "another-client"
        elif tamper == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 600
        elif tamper == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif tamper == "signature":
            key = self.other_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})

    def app(self) -> QuartTrio:
        app = QuartTrio("oidc-provider")

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> Response:
            base = self.issuer
            return jsonify({"issuer": base, "authorization_endpoint": f"{base}/authorize",
                            "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks",
                            "code_challenge_methods_supported": ["S256"]})  # fmt: skip

        @app.get("/jwks")
        async def jwks() -> Response:
            return jsonify(self.jwks())

        @app.get("/authorize")
        async def authorize() -> Any:
            args = request.args
            if args.get("response_type") != "code" or args.get("code_challenge_method") != "S256":
                return jsonify({"error": "invalid_request"}), 400
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(args["client_id"], args["redirect_uri"], args["code_challenge"],
                                      args["nonce"], dict(self.login_as))  # fmt: skip
            return redirect(f"{args['redirect_uri']}?{urlencode({'code': code, 'state': args['state']})}")

        @app.post("/token")
        async def token() -> Any:
            self.token_calls += 1
            form = await request.form
            grant = self.grants.pop(form.get("code", ""), None)  # single use
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (
                grant is None
                or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != grant.redirect_uri
                or form.get("client_id") != CLIENT_ID
                or form.get("client_secret") != CLIENT_SECRET
                or challenge != grant.challenge
            ):
                return jsonify({"error": "invalid_grant"}), 400
            return jsonify({"access_token": "at", "token_type": "Bearer", "id_token": self.id_token(grant)})

        return app


@asynccontextmanager
async def running_provider() -> AsyncIterator[Provider]:
    provider = Provider()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(serve_app, provider.app(), server_config("127.0.0.1", 0, 0.1), stop)
        provider.issuer = urls[0]
        try:
            yield provider
        finally:
            stop.set()
