"""Outbound (transport): the bot's access token and POSTs to the Connector service at a `serviceUrl` (B-10, B-12).

Nothing is sent, and no token is fetched, for a `serviceUrl` that is not on the allowlist. The token comes
from the client-credentials grant at `token_endpoint`; it is cached and fetched anew `_REFRESH_MARGIN` seconds
before it expires, or at once when the Connector answers 401.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import trio

from afactors_activity.activity import ConversationRef
from afactors_activity.config import ActivityConfig
from afactors_activity.outbound import activities_url
from afactors_activity.service_url import is_allowed

log = logging.getLogger("afactors.activity")

_REFRESH_MARGIN = 300.0
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 600.0
"""The longest wait a `Retry-After` can impose: later replies of the conversation queue behind it."""


class OutboundError(Exception):
    """A send failed: retry (after `retry_after` seconds when the service said so) unless `permanent`."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False,
                 status: int | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.retry_after, self.permanent, self.status = retry_after, permanent, status


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A `Retry-After` header (seconds or an HTTP date) as seconds from `now`, at most `MAX_RETRY_AFTER`; None
    when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


class TokenSource:
    """The bot's Bearer token for the Connector (client credentials), cached and refreshed; None without an app id."""

    def __init__(self, http: httpx.AsyncClient, config: ActivityConfig, *,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._http, self._config, self._clock = http, config, clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = trio.Lock()

    async def token(self) -> str | None:
        if self._config.app_id is None:
            return None
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._token, lifetime = await self._fetch()
                self._expires_at = self._clock() + max(lifetime - _REFRESH_MARGIN, lifetime / 2)
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (the Connector refused it)."""
        self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._config.app_id or "",
            "client_secret": self._config.app_password or "",
            "scope": self._config.token_scope,
        }
        try:
            answer = await self._http.post(self._config.token_endpoint, data=form)
        except httpx.HTTPError as error:
            raise OutboundError(f"token endpoint unreachable: {type(error).__name__}") from None
        if answer.status_code != 200:
            retry = retry_after_seconds(answer.headers.get("Retry-After"), self._clock())
            raise OutboundError(f"token endpoint answered {answer.status_code}", retry_after=retry,
                                status=answer.status_code)  # fmt: skip
        try:
            data = answer.json()
            token, lifetime = data["access_token"], float(data.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise OutboundError("token endpoint answered no access_token") from None
        if not isinstance(token, str) or not token:
            raise OutboundError("token endpoint answered no access_token")
        return token, lifetime


class Connector:
    """Posts activities to a conversation's Connector service."""

    def __init__(self, http: httpx.AsyncClient, config: ActivityConfig, tokens: TokenSource) -> None:
        self._http, self._config, self._tokens = http, config, tokens

    async def send(self, ref: ConversationRef, activity: Mapping[str, Any], *, reply: bool = True) -> str | None:
        """POST `activity` to `ref`'s conversation (threaded under the activity it answers when `reply`);
        the id the service gave it. Raises `OutboundError`."""
        if not is_allowed(ref.service_url, self._config.service_url_allowlist):
            log.warning("activity: refusing to send to serviceUrl %r: not on the allowlist", ref.service_url)
            raise OutboundError(f"serviceUrl {ref.service_url!r} is not on the allowlist", permanent=True)
        url = activities_url(ref, reply=reply)
        answer = await self._post(url, activity)
        if answer.status_code == 401 and self._config.app_id is not None:
            self._tokens.invalidate()  # expired or revoked early: once more with a fresh token
            answer = await self._post(url, activity)
        if answer.status_code in (200, 201, 202):
            return _resource_id(answer)
        retry = retry_after_seconds(answer.headers.get("Retry-After"), time.time())
        retryable = answer.status_code in _RETRYABLE
        raise OutboundError(f"the Connector answered {answer.status_code}: {answer.text[:200]}", retry_after=retry,
                            permanent=not retryable, status=answer.status_code)  # fmt: skip

    async def _post(self, url: str, activity: Mapping[str, Any]) -> httpx.Response:
        token = await self._tokens.token()
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        try:
            return await self._http.post(url, json=dict(activity), headers=headers)
        except httpx.HTTPError as error:
            raise OutboundError(f"the Connector at {url} is unreachable: {type(error).__name__}") from None


def _resource_id(answer: httpx.Response) -> str | None:
    try:
        data = answer.json()
    except ValueError:
        return None
    rid = data.get("id") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) and rid else None
