"""A Bot API fault proxy between the Telegram channel and the fake Bot API.

The channel runs in `python -m afactors` with `--telegram-api-base` pointing at a proxy in this process, which
forwards every call to the fake and, while a fault is on, answers the channel's `sendMessage` and
`editMessageText` calls itself: `500` (an outage), `429` (flood waits), `hang` (no answer, not forwarded), or
`lost` (forwarded, so the message is posted, then no answer). Each phase sends a message per user and counts
the answers that reached the fake and how many copies of each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from afactors_telegram.testing import open_fake_bot_api
from bench.common import REPO_ROOT
from bench.harness import free_port, progress

FAULTED = {"sendmessage", "editmessagetext"}


class Proxy:
    """The fault proxy: `mode` is None (pass through) or one of 500, 429, hang, lost."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.faulted = upstream, 0
        self.mode: str | None = None
        self.app = QuartTrio("chaos-proxy")
        self.app.add_url_rule("/<path:path>", "forward", self.forward, methods=["GET", "POST"])
        self.http = httpx.AsyncClient(timeout=120)

    async def forward(self, path: str) -> Any:
        method = path.rsplit("/", 1)[-1].lower()
        mode = self.mode if method in FAULTED else None
        if mode is not None:
            self.faulted += 1
        if mode == "500":
            return Response(b'{"ok":false,"error_code":500,"description":"Internal Server Error"}', 500,
                            {"content-type": "application/json"})  # fmt: skip
        if mode == "429":
            body = b'{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 2",' \
                   b'"parameters":{"retry_after":2}}'  # fmt: skip
            return Response(body, 429, {"content-type": "application/json"})
        if mode == "hang":
            await trio.sleep_forever()
        payload = await request.get_data(as_text=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type",)}
        answer = await self.http.request(request.method, f"{self.upstream}/{path}", content=payload, headers=headers,
                                         params=dict(request.args))  # fmt: skip
        if mode == "lost":
            await trio.sleep_forever()
        return Response(answer.content, answer.status_code, {"content-type": "application/json"})


def _copies(fake: Any, tag: str) -> int:
    texts = [str(c.params.get("text", "")) for c in fake.calls("sendMessage") + fake.calls("editMessageText") if c.ok]
    return sum(1 for text in texts if text.endswith(tag))


async def _phase(
    fake: Any, proxy: Proxy, users: list[Any], mode: str, hold: float, settle: float, linger: float = 0.0
) -> dict[str, float]:
    """Send a message per user with the fault on for `hold` s; wait until each is answered (at most `settle` s)
    and `linger` s more (late copies: a send whose answer was lost is retried after the client's timeout)."""
    tags = [f"{mode}-{n}-{time.monotonic_ns()}" for n in range(len(users))]
    proxy.mode = mode
    for user, tag in zip(users, tags, strict=True):
        fake.send_text(user, tag)
    await trio.sleep(hold)
    proxy.mode = None
    cleared = trio.current_time()
    with trio.move_on_after(settle):
        while any(_copies(fake, tag) == 0 for tag in tags):  # noqa: ASYNC110 -- polling the fake's record
            await trio.sleep(0.2)
    answered = trio.current_time() - cleared
    await trio.sleep(linger)
    copies = [_copies(fake, tag) for tag in tags]
    progress(f"botapi {mode}: fault {hold:.0f} s, copies per message {copies}, "
             f"all answered {answered:.1f} s after it cleared")  # fmt: skip
    return {
        f"chaos.botapi.{mode}.answered": sum(1 for c in copies if c) / len(copies),
        f"chaos.botapi.{mode}.max_copies": max(copies),
        f"chaos.botapi.{mode}.seconds_after_fault": answered,
    }


async def _run(quick: bool, scratch: Path) -> dict[str, float]:
    metrics: dict[str, float] = {}
    async with open_fake_bot_api(rate_limits=None) as fake:
        proxy = Proxy(fake.api_base)
        config = Config()
        port = free_port()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = config.errorlog = None
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve(proxy.app, config, shutdown_trigger=stop.wait, task_status=task_status)
            )  # type: ignore[arg-type]
            argv = [sys.executable, "-m", "afactors", "--port", str(free_port()), "--state-dir", str(scratch / "s"),
                    "--channel", "telegram", "--telegram-token", fake.token,
                    "--telegram-api-base", f"http://127.0.0.1:{port}"]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
            with (scratch / "server.log").open("wb") as log:
                process = await trio.lowlevel.open_process(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                await fake.wait_until(lambda: fake.call_count("deleteWebhook") > 0, timeout=60)
                users = [fake.user(f"U{i}") for i in range(5)]
                outage = 30.0 if quick else 90.0
                metrics |= await _phase(fake, proxy, users, "500", outage, 120)
                metrics |= await _phase(fake, proxy, users, "429", 10.0, 60)
                metrics |= await _phase(fake, proxy, users[:2], "hang", 5.0, 90)
                metrics |= await _phase(fake, proxy, users[:2], "lost", 5.0, 90, linger=45)
            finally:
                process.terminate()
                with trio.move_on_after(20):
                    await process.wait()
                process.kill()
                stop.set()
                await proxy.http.aclose()
    return metrics


def run(quick: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="chaos-botapi-") as scratch:
        return trio.run(_run, quick, Path(scratch))
