"""Webhook delivery: while a webhook is set, POST pending updates to it like Telegram does.

Up to ``max_connections`` updates are in flight at once, never two of the same chat (so a chat's updates
arrive in order). A non-2xx answer or a connection error is recorded in getWebhookInfo and the same
update is retried with exponential backoff until it succeeds or the webhook changes.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import attrs
import httpx
import trio

from afactors_telegram.testing.errors import ApiError
from afactors_telegram.testing.methods import BotApi
from afactors_telegram.testing.params import Params
from afactors_telegram.testing.updates import PendingUpdate, Webhook

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@attrs.frozen
class WebhookPolicy:
    """Retry timing: ``retry_delay`` doubles per failed attempt up to ``max_retry_delay`` (our choice;
    Telegram only says it retries "a reasonable number of attempts")."""

    retry_delay: float = 0.05
    max_retry_delay: float = 2.0
    timeout: float = 10.0


@attrs.define
class _InFlight:
    chats: set[int | None] = attrs.field(factory=set)
    ids: set[int] = attrs.field(factory=set)


async def run_webhook_pusher(api: BotApi, client: httpx.AsyncClient, policy: WebhookPolicy) -> None:
    """Follow setWebhook/deleteWebhook for ever; run delivery workers while a webhook is set."""
    while True:
        hook = api.updates.webhook
        changed = api.updates.webhook_changed
        if hook is None:
            await changed.wait()
            continue
        in_flight = _InFlight()
        async with trio.open_nursery() as nursery:
            for _ in range(hook.max_connections):
                nursery.start_soon(_worker, api, client, hook, policy, in_flight)
            await changed.wait()
            nursery.cancel_scope.cancel()


async def _worker(api: BotApi, client: httpx.AsyncClient, hook: Webhook, policy: WebhookPolicy,
                  in_flight: _InFlight) -> None:  # fmt: skip
    while True:
        update = api.updates.next_deliverable(in_flight.chats, in_flight.ids)
        if update is None:
            await api.updates.arrived().wait()
            continue
        in_flight.chats.add(update.chat_id)
        in_flight.ids.add(update.update_id)
        try:
            await _deliver_until_accepted(api, client, hook, policy, update)
        finally:
            in_flight.chats.discard(update.chat_id)
            in_flight.ids.discard(update.update_id)
            api.updates.wake()


async def _deliver_until_accepted(api: BotApi, client: httpx.AsyncClient, hook: Webhook, policy: WebhookPolicy,
                                  update: PendingUpdate) -> None:  # fmt: skip
    delay = policy.retry_delay
    while api.updates.is_pending(update.update_id):
        error = await _post(api, client, hook, policy, update)
        if error is None:
            api.updates.confirm(update.update_id)
            api.world.changes.poke()
            return
        api.updates.last_error_date = api.world.now()
        api.updates.last_error_message = error
        api.world.changes.poke()
        await trio.sleep(delay)
        delay = min(delay * 2, policy.max_retry_delay)


async def _post(api: BotApi, client: httpx.AsyncClient, hook: Webhook, policy: WebhookPolicy,
                update: PendingUpdate) -> str | None:  # fmt: skip
    """One delivery attempt; the getWebhookInfo error message, or None when the webhook took it."""
    headers = {"Content-Type": "application/json"}
    if hook.secret_token:
        headers[SECRET_HEADER] = hook.secret_token
    try:
        answer = await client.post(hook.url, content=json.dumps(update.body), headers=headers,
                                   timeout=policy.timeout)  # fmt: skip
    except httpx.TimeoutException:
        return "Read timeout expired"
    except httpx.HTTPError as error:
        return f"Connection failed: {error}" if str(error) else "Connection refused"
    if not answer.is_success:
        try:
            reason = HTTPStatus(answer.status_code).phrase
        except ValueError:
            reason = "Unknown"
        return f"Wrong response from the webhook: {answer.status_code} {reason}"
    _run_reply_method(api, answer)
    return None


def _run_reply_method(api: BotApi, answer: httpx.Response) -> None:
    """A webhook may answer with one method call in its body (T-03); Telegram runs it, ignoring errors."""
    try:
        body = answer.json()
    except ValueError:
        return
    if isinstance(body, dict) and isinstance(body.get("method"), str):
        values = {key: value for key, value in body.items() if key != "method"}
        params = Params(values)
        try:
            reply = api.call(body["method"], params)
        except ApiError as error:  # Telegram ignores errors of webhook-reply methods
            api.record(body["method"], params, error.error_code, error.envelope())
        else:
            api.record(body["method"], params, 200, reply.envelope())
