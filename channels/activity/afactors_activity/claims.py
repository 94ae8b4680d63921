"""Checks of an inbound Bot Service token (pure; B-20): header, claims, the key's endorsements.

The signature itself is checked by PyJWT in `auth.py`; everything a token must say is checked here, each
failure raising `AuthFailure` with a reason for the log (the HTTP answer stays a bland 401).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from afactors_activity.service_url import same_service_url

ALGORITHMS = ("RS256",)


class AuthFailure(Exception):
    """The request is not authenticated; the message says why (for the log, not for the caller)."""


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        raise AuthFailure("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthFailure("the Authorization header is not 'Bearer <token>'")
    return token


def check_header(header: Mapping[str, Any]) -> str:
    """The key id a token is signed with; only RS256 with a `kid` is accepted (no `none`, no HMAC)."""
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AuthFailure(f"token algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)})")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthFailure("the token names no signing key (kid)")
    return kid


def _time(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthFailure(f"the token's {name} claim is missing or not a number")
    return float(value)


def check_claims(claims: Mapping[str, Any], *, app_id: str, issuers: Iterable[str], now: float, skew: float) -> None:
    """Issuer, audience (the bot's app id) and validity period, allowing `skew` seconds of clock difference."""
    if claims.get("iss") not in tuple(issuers):
        raise AuthFailure(f"issuer {claims.get('iss')!r} is not trusted")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if app_id not in audiences:
        raise AuthFailure(f"audience {audience!r} is not this bot ({app_id})")
    expires = _time(claims, "exp", required=True)
    assert expires is not None
    if now > expires + skew:
        raise AuthFailure("the token has expired")
    not_before = _time(claims, "nbf", required=False)
    if not_before is not None and now < not_before - skew:
        raise AuthFailure("the token is not valid yet")


def check_service_url(claims: Mapping[str, Any], service_url: str) -> None:
    """The token was issued for the activity's `serviceUrl` (its `serviceurl` claim names the same URL)."""
    claimed = claims.get("serviceurl")
    if not isinstance(claimed, str) or not claimed:
        raise AuthFailure("the token has no serviceurl claim")
    if not same_service_url(claimed, service_url):
        raise AuthFailure(f"the token is for serviceUrl {claimed!r}, the activity names {service_url!r}")


def check_endorsement(jwk: Mapping[str, Any], channel_id: str) -> None:
    """A key that lists `endorsements` may only sign for those channels."""
    endorsements = jwk.get("endorsements")
    if endorsements is None:
        return
    if not isinstance(endorsements, list) or channel_id not in endorsements:
        raise AuthFailure(f"the signing key is not endorsed for channel {channel_id!r}")
