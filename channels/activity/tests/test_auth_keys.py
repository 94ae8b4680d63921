"""The signing-key cache and the outbound token source, against the fake identity on loopback (no host)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from afactors_activity.auth import InboundAuth, KeysUnavailable
from afactors_activity.claims import AuthFailure
from afactors_activity.config import ActivityConfig
from afactors_activity.connector import OutboundError, TokenSource
from afactors_activity.testing import FakeIdentity

SERVICE_URL = "https://smba.trafficmanager.net/amer/"


class Clock:
    """A clock the test moves by hand, starting now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def identity() -> AsyncIterator[FakeIdentity]:
    async with FakeIdentity("app-1", "secret-1").running() as fake:
        yield fake


def config(identity: FakeIdentity, **changes: object) -> ActivityConfig:
    settings: dict[str, object] = {"app_id": "app-1", "app_password": "secret-1",
                                   "openid_metadata_url": identity.metadata_url,
                                   "token_endpoint": identity.token_endpoint, **changes}  # fmt: skip
    return ActivityConfig(**settings)  # type: ignore[arg-type]


async def test_keys_are_cached_refetched_for_unknown_keys_at_most_once_a_minute_and_expire(
    identity: FakeIdentity,
) -> None:
    clock = Clock()
    async with httpx.AsyncClient() as http:
        auth = InboundAuth(http, config(identity), clock=clock)
        good = identity.token(SERVICE_URL, nbf=int(clock.now) - 5, exp=int(clock.now) + 10 * 86400)
        verified = await auth.authenticate(f"Bearer {good}")
        assert verified.claims["serviceurl"] == SERVICE_URL and verified.key["kid"] == identity.jwk["kid"]
        await auth.authenticate(f"Bearer {good}")
        assert identity.key_fetches == 1
        unknown = f"Bearer {identity.token(SERVICE_URL, 'unknown_key')}"
        with pytest.raises(AuthFailure, match="unknown key"):
            await auth.authenticate(unknown)
        assert identity.key_fetches == 1  # fetched less than a minute ago: no new fetch for a stranger's key
        clock.now += 61
        with pytest.raises(AuthFailure, match="unknown key"):
            await auth.authenticate(unknown)
        assert identity.key_fetches == 2  # a rotated key is looked for again
        clock.now += 24 * 3600 + 1
        await auth.authenticate(f"Bearer {good}")
        assert identity.key_fetches == 3  # the cache expired


async def test_a_metadata_document_without_keys_is_unavailable_not_unauthorized(identity: FakeIdentity) -> None:
    async with httpx.AsyncClient() as http:
        broken = InboundAuth(http, config(identity, openid_metadata_url=identity.token_endpoint))
        with pytest.raises(KeysUnavailable):
            await broken.authenticate(f"Bearer {identity.token(SERVICE_URL)}")


async def test_the_outbound_token_is_cached_and_refreshed_before_expiry(identity: FakeIdentity) -> None:
    clock = Clock()
    async with httpx.AsyncClient() as http:
        tokens = TokenSource(http, config(identity), clock=clock)
        first = await tokens.token()
        assert first in identity.issued and await tokens.token() == first
        clock.now += 3600 - 300 - 1
        assert await tokens.token() == first
        clock.now += 2  # within 5 minutes of expiry: fetched anew
        second = await tokens.token()
        assert second != first and len(identity.token_requests) == 2
        tokens.invalidate()
        assert await tokens.token() not in (first, second)


async def test_refused_credentials_are_an_outbound_error_without_the_secret(identity: FakeIdentity) -> None:
    async with httpx.AsyncClient() as http:
        tokens = TokenSource(http, config(identity, app_password="wrong"))
        with pytest.raises(OutboundError) as refused:
            await tokens.token()
        assert refused.value.status == 401 and "wrong" not in str(refused.value)
        assert await TokenSource(http, ActivityConfig(auth="disabled")).token() is None  # no app id: no token
