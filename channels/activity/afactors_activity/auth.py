"""Inbound authentication (transport): the Bot Service's signing keys and the signature check (B-20).

Keys come from the JWKS named by the OpenID metadata document at `openid_metadata_url`; they are cached for
`keys_ttl` and fetched again (at most once a minute) when a token names a key that is not known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from afactors_activity.claims import ALGORITHMS, AuthFailure, bearer_token, check_claims, check_header
from afactors_activity.config import ActivityConfig

log = logging.getLogger("afactors.activity")

_REFETCH_AFTER = 60.0


class KeysUnavailable(Exception):
    """The signing keys could not be fetched; the request cannot be checked now (503, the service retries)."""


@attrs.frozen
class Verified:
    """A token whose signature, issuer, audience and lifetime are good; the activity checks come after."""

    claims: Mapping[str, Any]
    key: Mapping[str, Any]


class InboundAuth:
    """Checks `Authorization` headers against the configured OpenID metadata, issuers and app id."""

    def __init__(self, http: httpx.AsyncClient, config: ActivityConfig, *,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        assert config.app_id is not None
        self._http, self._config, self._app_id, self._clock = http, config, config.app_id, clock
        self._keys: dict[str, Mapping[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = trio.Lock()

    async def authenticate(self, authorization: str | None) -> Verified:
        """The verified token of a request; raises `AuthFailure` or `KeysUnavailable`."""
        import jwt  # here, not at module level: it pulls in `cryptography`, a sizeable share of the host's startup

        token = bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise AuthFailure(f"the token is not a JWT ({error})") from None
        key = await self._key(check_header(header))
        try:
            signing_key = jwt.PyJWK(dict(key), algorithm=ALGORITHMS[0]).key
            claims = jwt.decode(token, signing_key, algorithms=list(ALGORITHMS), options={
                "verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                "verify_iss": False,
            })  # fmt: skip
        except jwt.PyJWTError as error:
            raise AuthFailure(f"the token's signature does not verify ({error})") from None
        check_claims(claims, app_id=self._app_id, issuers=self._config.issuers, now=self._clock(),
                     skew=self._config.clock_skew)  # fmt: skip
        return Verified(claims, key)

    async def _key(self, kid: str) -> Mapping[str, Any]:
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > self._config.keys_ttl
            unknown = kid not in self._keys and (self._fetched_at is None or now - self._fetched_at > _REFETCH_AFTER)
            if stale or unknown:
                self._keys = await self._fetch_keys()
                self._fetched_at = now
        key = self._keys.get(kid)
        if key is None:
            raise AuthFailure(f"the token is signed with an unknown key {kid!r}")
        return key

    async def _fetch_keys(self) -> dict[str, Mapping[str, Any]]:
        try:
            metadata = await self._json(self._config.openid_metadata_url)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise KeysUnavailable("the OpenID metadata names no jwks_uri")
            keys = (await self._json(jwks_uri)).get("keys")
        except (httpx.HTTPError, ValueError) as error:
            log.error("activity: cannot fetch the Bot Service signing keys: %s", error)
            raise KeysUnavailable(str(error)) from None
        if not isinstance(keys, list):
            raise KeysUnavailable("the JWKS has no keys list")
        return {key["kid"]: key for key in keys if isinstance(key, dict) and isinstance(key.get("kid"), str)}

    async def _json(self, url: str) -> Mapping[str, Any]:
        answer = await self._http.get(url)
        answer.raise_for_status()
        data = answer.json()
        if not isinstance(data, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return data
