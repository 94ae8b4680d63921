"""Long polling: deleteWebhook, then getUpdates with the intake's offset, for ever."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from afactors.channel import Backoff
from afactors_telegram.api import BotApiClient, NetworkError, TelegramError
from afactors_telegram.inbound import ALLOWED_UPDATES
from afactors_telegram.intake import Intake

log = logging.getLogger("afactors.telegram")

_BACKOFF = Backoff(1.0, 30.0)
_REFILL_BELOW = 50  # half of the 100 updates one getUpdates call returns


def _valid(update: Any) -> bool:
    return isinstance(update, Mapping) and type(update.get("update_id")) is int


async def poll(api: BotApiClient, intake: Intake, *, timeout: float,
               task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """Feed every update to `intake`; the offset only moves past updates the intake has finished.

    getUpdates returns at most 100 updates from the offset, in flight ones included, so the poller asks
    again only when at most half of that window is in flight (or, if a call brought nothing new, when
    the intake finished one): no busy loop, and few updates fetched twice.
    Every error backs off with jitter (1 s doubling to 30 s) and is retried: a 409 (a webhook was set, or
    another poller runs) or a 401 (token revoked) is logged as an error, never crashes the host.
    """
    await api.call("deleteWebhook", {"drop_pending_updates": False})
    task_status.started()
    failures = 0
    while True:
        while intake.in_flight > _REFILL_BELOW:
            await intake.wait_progress()
        params: dict[str, Any] = {"timeout": int(timeout), "allowed_updates": list(ALLOWED_UPDATES)}
        if intake.offset is not None:
            params["offset"] = intake.offset
        try:
            batch = await api.call("getUpdates", params, timeout=timeout + 15)
        except (TelegramError, NetworkError) as error:
            transient = isinstance(error, NetworkError) or error.retryable
            failures += 1
            delay = _BACKOFF.delay(failures)
            log.log(
                logging.WARNING if transient else logging.ERROR,
                "telegram getUpdates failed (%s); retrying in %.1f s",
                error,
                delay,
            )
            await trio.sleep(delay)
            continue
        failures = 0
        updates = [u for u in batch if _valid(u)] if isinstance(batch, list) else []
        fresh = [u for u in updates if not intake.known(u["update_id"])]
        for update in fresh:
            intake.offer(update)
        if updates and not fresh and intake.in_flight:
            await intake.wait_progress()
