"""The webhook route: check the secret header, parse the update, answer 2xx once it is durable."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import trio
from quart import Response, request
from werkzeug.exceptions import HTTPException

from afactors_telegram.intake import Intake

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _answer(status: int, description: str | None = None) -> Response:
    body: dict[str, Any] = {"ok": status == 200}
    if description:
        body["description"] = description
    return Response(orjson.dumps(body), status=status, content_type="application/json")


def webhook_view(
    secret: str, intake: Callable[[], Awaitable[Intake | None]], ack_timeout: float
) -> Callable[[], Awaitable[Response]]:
    """A Quart view for Telegram's webhook POSTs.

    A missing or wrong X-Telegram-Bot-Api-Secret-Token gets 403 (compared in constant time); a body that
    is not a JSON object with an integer `update_id` gets 400. A good update gets 200 only once the intake
    has finished it (its envelope is in the durable inbox); if that takes longer than `ack_timeout`, or the
    channel is not running, the answer is 503 and Telegram delivers the update again later (the retry is
    deduplicated by update id).
    """
    expected = secret.encode()

    async def telegram_webhook() -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            return _answer(403, "wrong secret token")
        try:
            update = orjson.loads(await request.get_data())
        except orjson.JSONDecodeError:
            return _answer(400, "the body is not JSON")
        except HTTPException as error:  # 408 body timeout, 413 too large: Telegram's envelope, not Quart's HTML
            return _answer(error.code or 400, error.description or error.name)
        if not isinstance(update, dict) or type(update.get("update_id")) is not int:
            return _answer(400, "the body is not a Telegram Update (an object with an integer update_id)")
        running = await intake()
        if running is None:
            return _answer(503, "the channel is not running")
        done = running.offer(update)
        with trio.move_on_after(ack_timeout):
            await done.wait()
            return _answer(200)
        return _answer(503, "the update is still waiting for its conversation; deliver it again later")

    return telegram_webhook
