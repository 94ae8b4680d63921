"""The OIDC linker's configuration and pure steps: signed `state`, PKCE, the authorization URL, and the ID
token check (signature against the provider's JWKS, issuer, audience, expiry, nonce).

Importing this module never imports PyJWT; `verify_id_token` does (the `afactors[oidc]` extra), so a host
without the extra only fails when an OIDC linker is configured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import attrs

STATE_VERSION = "1"


class OidcError(Exception):
    """A sign-in step failed; `message` is safe to show, `code` names the failure (`invalid_state`,
    `expired_state`, `replayed`, `provider_error`, `invalid_token`, `nonce_mismatch`, `not_configured`)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


@attrs.frozen
class OidcConfig:
    """An OpenID Connect provider to sign in with (authorization code + PKCE).

    `issuer`: the provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    `client_id`, `client_secret` (None: a public client, PKCE only). `claims`: the verified ID-token claims
    recorded on the person; `merge_on`: those that merge two identities presenting the same value (the issuer's
    `sub` always does; `email` only counts when `email_verified` is true). `state_secret`: the key that signs
    `state` (None: random per process, so sign-ins in flight do not survive a restart). `public_url`: the URL
    browsers reach the host at (None: the host's first listening URL). `flow_ttl`: seconds a sign-in may take.
    """

    issuer: str
    client_id: str
    client_secret: str | None = attrs.field(default=None, repr=False)
    scopes: tuple[str, ...] = attrs.field(default=("openid", "email", "profile"), converter=tuple)
    claims: tuple[str, ...] = attrs.field(default=("email", "name", "oid", "tid"), converter=tuple)
    merge_on: tuple[str, ...] = attrs.field(default=("email", "oid"), converter=tuple)
    state_secret: bytes = attrs.field(factory=lambda: secrets.token_bytes(32), repr=False)
    public_url: str | None = None
    flow_ttl: float = 600.0
    leeway: float = 30.0
    algorithms: tuple[str, ...] = attrs.field(default=("RS256", "PS256", "ES256", "EdDSA"), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if "openid" not in self.scopes:
            raise ValueError("an OIDC linker needs the 'openid' scope")
        if not set(self.merge_on) <= set(self.claims):
            raise ValueError("every merge_on claim must be one of the recorded claims")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_state(secret: bytes, payload: Mapping[str, Any]) -> str:
    """`<version>.<payload>.<HMAC-SHA256>` (URL-safe): what the provider hands back unchanged."""
    body = _b64(json.dumps(dict(payload), separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret, f"{STATE_VERSION}.{body}".encode(), hashlib.sha256).digest()
    return f"{STATE_VERSION}.{body}.{_b64(mac)}"


def open_state(secret: bytes, state: str, now: float) -> dict[str, Any]:
    """The payload of a `state` this host signed and that has not expired (its `x`); raises `OidcError`."""
    forged = OidcError("This sign-in link is not valid.", "invalid_state")
    parts = state.split(".")
    if len(parts) != 3 or parts[0] != STATE_VERSION:
        raise forged
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
        payload = json.loads(_unb64(parts[1])) if hmac.compare_digest(given, expected) else None
    except ValueError:
        raise forged from None
    if not isinstance(payload, dict) or not isinstance(payload.get("x"), int | float):
        raise forged
    if payload["x"] <= now:
        raise OidcError("This sign-in link has expired; ask for a new one.", "expired_state")
    return payload


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier (43 characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(32)
    return verifier, challenge_of(verifier)


def challenge_of(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


def authorization_url(endpoint: str, config: OidcConfig, redirect_uri: str, state: str, nonce: str,
                      challenge: str) -> str:  # fmt: skip
    """Where the browser signs in: the provider's authorization endpoint with the code flow's parameters."""
    query = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(config.scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


def verify_id_token(id_token: str, jwks: Mapping[str, Any], config: OidcConfig, issuer: str, nonce: str,
                    now: float) -> dict[str, Any]:  # fmt: skip
    """The claims of an ID token whose signature verifies against `jwks` (by `kid`), issued by `issuer` for
    this client, not expired, carrying `nonce`; raises `OidcError` (`invalid_token`, `nonce_mismatch`)."""
    import jwt  # the afactors[oidc] extra

    try:
        kid = jwt.get_unverified_header(id_token).get("kid")
        keys = [k for k in jwt.PyJWKSet.from_dict(dict(jwks)).keys if kid is None or k.key_id == kid]
        if not keys:
            raise OidcError("The provider's keys do not include the one that signed the ID token.", "invalid_token")
        claims: dict[str, Any] = jwt.decode(
            id_token, keys[0], algorithms=list(config.algorithms), audience=config.client_id, issuer=issuer,
            leeway=config.leeway, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise OidcError("The ID token has expired.", "invalid_token") from None
    except jwt.InvalidAudienceError:
        raise OidcError("The ID token was issued for another client.", "invalid_token") from None
    except (jwt.PyJWTError, ValueError) as error:
        raise OidcError(f"The ID token is not valid ({type(error).__name__}).", "invalid_token") from None
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise OidcError("The ID token does not answer this sign-in (nonce mismatch).", "nonce_mismatch")
    if isinstance(claims.get("exp"), int | float) and claims["exp"] + config.leeway < now:
        raise OidcError("The ID token has expired.", "invalid_token")
    return claims


def recorded_claims(claims: Mapping[str, Any], config: OidcConfig) -> dict[str, str]:
    """The verified claims kept on the person (strings only; `email` only when `email_verified` is true), plus
    `iss` and `sub`."""
    out = {"iss": str(claims["iss"]), "sub": str(claims["sub"])}
    for name in config.claims:
        value = claims.get(name)
        if name == "email" and claims.get("email_verified") is not True:
            continue
        if isinstance(value, str) and value:
            out[name] = value.lower() if name == "email" else value
    return out


def merge_keys(claims: Mapping[str, str], config: OidcConfig) -> dict[str, str]:
    """The claim values that identify a person across identities: `issuer|sub` and each `merge_on` claim."""
    out = {"sub": f"{claims['iss']}|{claims['sub']}"}
    out.update({name: claims[name] for name in config.merge_on if name in claims})
    return out
