"""Push notifications: the task's push configs kept in the channel's aliases, and their delivery from the host's
durable outbox (the `deliver` of the channel's contribution).

Every turn of the channel carries a `reply_to` target (when push notifications are on), so its commit writes an
outbox row; delivery then reads the task's configs as they stand and POSTs the task to each webhook: v1
configs get a `StreamResponse` (`{"task": ...}`), v0.3 configs the v0.3 Task. Headers: `X-A2A-Notification-Token`
when the config has a token, `Authorization: <scheme> <credentials>` when it has authentication. A 2xx is
delivered; 408, 429, 5xx and network errors are retried by the outbox (honouring `Retry-After`), other 4xx are
permanent. With several configs, those already served are remembered so a retry only re-sends the others.
"""

from __future__ import annotations

from typing import Any

import cattrs
import httpx

from afactors.channel import ChannelContext, Delivery, DeliveryFailed
from afactors.model import converter
from afactors_a2a.requests import PushConfig

TOKEN_HEADER = "X-A2A-Notification-Token"
TIMEOUT = 10.0


def _configs_key(tenant: str, task_id: str) -> str:
    return f"push/{tenant}/{task_id}"


def configs(ctx: ChannelContext, tenant: str, task_id: str) -> list[PushConfig]:
    """The push configs of a task, oldest first."""
    return _parsed(ctx.alias(_configs_key(tenant, task_id)))


def _parsed(stored: dict[str, Any] | None) -> list[PushConfig]:
    try:
        return converter.structure((stored or {}).get("configs", []), list[PushConfig])
    except cattrs.BaseValidationError:
        return []


def _stored(kept: list[PushConfig]) -> dict[str, Any]:
    return {"configs": converter.unstructure(kept)}


async def save(ctx: ChannelContext, tenant: str, config: PushConfig) -> None:
    """Add a config to its task, replacing one with the same id."""
    await ctx.change_alias(
        _configs_key(tenant, config.task_id),
        lambda stored: _stored([*(c for c in _parsed(stored) if c.id != config.id), config]),
    )


async def delete(ctx: ChannelContext, tenant: str, task_id: str, config_id: str) -> bool:
    """Remove a config; False if the task had none with that id."""
    removed = False

    def without(stored: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal removed
        found = _parsed(stored)
        kept = [c for c in found if c.id != config_id]
        removed = len(kept) != len(found)
        return _stored(kept) if removed else stored

    await ctx.change_alias(_configs_key(tenant, task_id), without)
    return removed


def headers(config: PushConfig) -> dict[str, str]:
    sent = {"Content-Type": "application/json"}
    if config.token:
        sent[TOKEN_HEADER] = config.token
    if config.scheme and config.credentials:
        sent["Authorization"] = f"{config.scheme} {config.credentials}"
    return sent


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


class Pusher:
    """POSTs a task to its webhooks; `render(tenant, task_id, version)` gives the body (None: task is gone)."""

    def __init__(self, ctx: ChannelContext, render: Any) -> None:
        self.ctx = ctx
        self.render = render
        self.client: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def deliver(self, delivery: Delivery) -> None:
        tenant, task_id = str(delivery.address.get("tenant")), str(delivery.address.get("task"))
        served_key = f"pushed/{delivery.turn_id}"
        served = set((self.ctx.alias(served_key) or {}).get("ids", []))
        pending = [c for c in configs(self.ctx, tenant, task_id) if c.id not in served]
        retry: list[DeliveryFailed] = []
        permanent: list[DeliveryFailed] = []
        for config in pending:
            body = self.render(tenant, task_id, config.version)
            if body is None:
                return  # the task is gone (deleted or never visible): nothing to tell
            try:
                await self._post(config, body)
            except DeliveryFailed as failure:
                (permanent if failure.permanent else retry).append(failure)
            else:
                served.add(config.id)
        if retry:
            if len(served) and len(pending) > 1:
                await self.ctx.set_alias(served_key, {"ids": sorted(served)})
            delays = [f.retry_after for f in retry if f.retry_after is not None]
            raise DeliveryFailed("; ".join(map(str, retry + permanent)), retry_after=max(delays) if delays else None)
        if permanent:
            raise DeliveryFailed("; ".join(map(str, permanent)), permanent=True)

    async def _post(self, config: PushConfig, body: dict[str, Any]) -> None:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        try:
            response = await self.client.post(config.url, json=body, headers=headers(config))
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"push to {config.url} failed: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        message = f"push to {config.url} answered HTTP {status}"
        if status in (408, 429) or status >= 500:
            raise DeliveryFailed(message, retry_after=_retry_after(response))
        raise DeliveryFailed(message, permanent=True)
