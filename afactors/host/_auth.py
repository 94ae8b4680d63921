"""API keys: `Authorization: Bearer <key>`, each key its own tenant."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from afactors.channel import DEFAULT_TENANT, Unauthorized

__all__ = ["DEFAULT_TENANT", "ApiKeys", "Unauthorized", "tenant_of_key"]


def tenant_of_key(key: str) -> str:
    """A stable tenant id for an API key that does not reveal the key."""
    return "t" + hashlib.sha256(key.encode()).hexdigest()[:24]


class ApiKeys:
    """Checks bearer tokens in constant time; with no keys configured, everyone is the default tenant."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = [k.encode() for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def tenant(self, authorization: str | None) -> str:
        """The tenant for an `Authorization` header value; raises `Unauthorized`."""
        if not self._keys:
            return DEFAULT_TENANT
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <api key>'")
        candidate = token.strip().encode()
        match = None
        for key in self._keys:  # compare against every key so timing does not reveal which matched
            if hmac.compare_digest(candidate, key):
                match = key
        if match is None:
            raise Unauthorized("invalid API key")
        return tenant_of_key(match.decode())
