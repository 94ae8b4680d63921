"""A broadcast to many Telegram chats through `POST /v1/pushes`, with kill -9 of the host in the middle.

`python -m bench.broadcast [--quick|--full] [--json PATH]`. The host runs as `python -m afactors` (Telegram
channel, durable commits) in its own process; the fake Bot API runs in this process and enforces Telegram-like
limits (1 msg/s per chat, a global rate) and counts violations. The chats are known identities of the default
tenant (seeded into the state directory before the host starts, as if each had written to the bot once). One
push names all of them. Once a third has been sent, the fake holds new sends at the door and the bench waits
until the host's delivery audit records every answered send as delivered (so no send is half done), the host is
killed with SIGKILL, the held sends are dropped (they never reached "Telegram"), the host is
started again and the same push is asked for again (same idempotency key: nothing is queued twice).

* `broadcast.messages_per_s`: messages sent per second while sending (first to last send of each run; the
  downtime, restart and the held second are excluded).
* `broadcast.vs_rate`: that over the global rate limit the channel was given (<= 1 by construction).
* `broadcast.duplicates`, `broadcast.missing`, `broadcast.violations`: must all be 0.

Quick: 2,000 chats at 400 msg/s. Full: 10,000 chats at 500 msg/s (the slow test runs the full shape once).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio

from afactors.identity import IdentityService
from afactors.model import Identity
from afactors.store import Store
from afactors_telegram.testing import FakeBotApi, RateLimits, open_fake_bot_api
from bench.common import MIN_RUNS, REPO_ROOT, Metrics, bench_main, summarize
from bench.harness import free_port, progress

TEXT = "Scheduled maintenance tonight at 22:00 UTC."
KEY = "announce-maintenance"
STARTUP_TIMEOUT = 60.0
SEND_TIMEOUT = 1800.0
"""A hang guard, not a measure: a machine shared by many jobs may send far below the rate limit."""
ARRIVAL_JITTER = 0.25
"""Seconds of sends the fake's global bucket lets arrive together. The fake times a send when this process
handles it, so a pause here (the OS running other jobs) bunches sends the host spaced out; at 500 msg/s a burst
of 30 would tolerate only 60 ms of it. A host ignoring the global rate still trips the bucket within a second."""


def shape(quick: bool) -> tuple[int, float]:
    """(chats, global messages per second)."""
    return (2000, 400.0) if quick else (10_000, 500.0)


async def seed(state: Path, chat_ids: Sequence[int]) -> None:
    """Make every chat a known identity with its address, as if each user had written to the bot once."""
    async with Store.open(state, durability="fast") as store:
        identity = IdentityService(store)
        limiter = trio.CapacityLimiter(512)

        async def one(chat_id: int) -> None:
            async with limiter:
                address = {"chat_id": chat_id, "chat_type": "private"}
                await identity.resolve("default", Identity("telegram", str(chat_id)), address)

        async with trio.open_nursery() as nursery:
            for chat_id in chat_ids:
                nursery.start_soon(one, chat_id)


class HostProcess:
    """`python -m afactors` with the Telegram channel against the fake, on a fresh port each start."""

    def __init__(self, fake: FakeBotApi, state: Path, rate: float, log: Path) -> None:
        self.fake, self.state, self.rate, self.log = fake, state, rate, log
        self.process: trio.Process | None = None
        self.url = ""

    async def start(self, http: httpx.AsyncClient) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "afactors", "--port", str(port), "--state-dir", str(self.state),
            "--channel", "telegram", "--telegram-token", self.fake.token, "--telegram-api-base", self.fake.api_base,
            "--telegram-chat-rate", "1", "--telegram-global-rate", str(self.rate),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        polls = self.fake.call_count("deleteWebhook")  # the poller's first call
        with self.log.open("ab") as log:
            self.process = await trio.lowlevel.open_process(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        await self.fake.wait_until(lambda: self.fake.call_count("deleteWebhook") > polls, timeout=STARTUP_TIMEOUT)
        with trio.move_on_after(STARTUP_TIMEOUT):
            while True:  # a restarted host resuming thousands of deliveries may answer slowly
                try:
                    if (await http.get(self.url + "/readiness")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)
        raise RuntimeError(f"the host did not become ready; see {self.log}")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown code runs
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with trio.move_on_after(15):
                await self.process.wait()
            self.process.kill()
            await self.process.wait()


def push_body(chat_ids: Sequence[int]) -> bytes:
    """The push naming every chat, encoded once: encoding it again after the restart would pause the fake while
    the host is sending."""
    identities = [{"channel": "telegram", "user": str(c)} for c in chat_ids]
    body = {"target": {"kind": "identities", "identities": identities}, "message": TEXT, "idempotency_key": KEY}
    return json.dumps(body).encode()


async def push(http: httpx.AsyncClient, url: str, body: bytes) -> httpx.Response:
    return await http.post(url + "/v1/pushes", content=body, headers={"content-type": "application/json"})


def _span(times: Sequence[float]) -> float:
    """Seconds from the first to the last of `times` (0 for fewer than two)."""
    return max(times) - min(times) if len(times) > 1 else 0.0


async def settled(http: httpx.AsyncClient, url: str, push_id: str, fake: FakeBotApi) -> int:
    """Once sends are held: wait until every send Telegram answered is recorded delivered by the host (its
    delivery audit says so), so the kill finds no send half done; how many were sent."""
    with trio.fail_after(120):
        while True:
            done = sent(fake)
            report = (await http.get(f"{url}/v1/deliveries/{push_id}")).json()
            if report["counts"]["delivered"] >= done and sent(fake) == done:
                return done
            await trio.sleep(0.1)


def sent(fake: FakeBotApi) -> int:
    return fake.answered_count("sendMessage")


async def one_run(chats: int, rate: float, scratch: Path) -> dict[str, Any]:
    """The scenario; returns figures and the evidence (`per_chat` message counts, the push answers)."""
    burst = max(30, round(rate * ARRIVAL_JITTER))
    limits = RateLimits(per_chat_per_second=1.0, per_chat_burst=3, global_per_second=rate, global_burst=burst)
    async with open_fake_bot_api(rate_limits=limits) as fake, httpx.AsyncClient(timeout=120) as http:
        chat_ids = [fake.private_chat(fake.user(f"User{i}")).id for i in range(chats)]
        await seed(scratch / "state", chat_ids)
        # The fake stands in for Telegram's servers and times each send as it handles it: a collector pause in
        # this process would bunch sends the host spaced out. The world built so far lives to the end, so the
        # full collections (26-45 ms here, more on a loaded machine) stop rescanning it.
        host, body = HostProcess(fake, scratch / "state", rate, scratch / "host.log"), push_body(chat_ids)
        gc.collect()
        gc.freeze()
        try:
            await host.start(http)
            first = await push(http, host.url, body)
            if first.status_code != 202:
                raise RuntimeError(f"push refused: {first.status_code} {first.text}")
            await fake.wait_until(lambda: sent(fake) >= chats // 3, timeout=SEND_TIMEOUT)
            fake.hold_sends()
            before_kill = await settled(http, host.url, first.json()["id"], fake)
            killed_at = trio.current_time()
            await host.kill()
            fake.release_sends(drop=True)  # held sends (and any the dead host left in flight) never reach Telegram
            await trio.sleep(1.0)
            fake.release_sends()
            await host.start(http)
            restarted = trio.current_time()
            again = await push(http, host.url, body)
            await fake.wait_until(lambda: sent(fake) >= chats, timeout=SEND_TIMEOUT)
            await trio.sleep(1.0)  # anything sent twice would arrive now
        finally:
            await host.stop()
            gc.unfreeze()
        ok = [c for c in fake.calls("sendMessage") if c.ok]
        per_chat = Counter(int(c.params["chat_id"]) for c in ok)
        counts = [per_chat.get(chat_id, 0) for chat_id in chat_ids]
        sending = _span([c.at for c in ok if c.at < killed_at]) + _span([c.at for c in ok if c.at >= restarted])
        return {
            "broadcast.messages_per_s": len(ok) / sending,
            "broadcast.vs_rate": len(ok) / sending / rate,
            "broadcast.sent_before_kill": float(before_kill),
            "broadcast.duplicates": float(sum(max(0, n - 1) for n in counts)),
            "broadcast.missing": float(sum(1 for n in counts if n == 0)),
            "broadcast.violations": float(fake.rate_limit_violations),
            "counts": counts,
            "texts": {str(c.params["text"]) for c in fake.calls("sendMessage") if c.ok},
            "answers": (first.status_code, first.json(), again.status_code, again.json()),
        }


def run(quick: bool) -> Metrics:
    """The scenario `MIN_RUNS` times; medians with min-max."""
    chats, rate = shape(quick)
    samples: dict[str, list[float]] = {}
    for attempt in range(MIN_RUNS):
        with tempfile.TemporaryDirectory(prefix="bench-broadcast-") as scratch:
            result = trio.run(one_run, chats, rate, Path(scratch))
        figures = {k: v for k, v in result.items() if k.startswith("broadcast.")}
        progress(f"broadcast run {attempt + 1}: " + ", ".join(f"{k}={v:.2f}" for k, v in figures.items()))
        for name, value in figures.items():
            samples.setdefault(name, []).append(value)
    metrics = summarize(samples)
    metrics.notes["broadcast.shape"] = f"{chats} chats, 1 msg/s per chat, {rate:g} msg/s global, kill -9 at 1/3"
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m bench.broadcast [--quick|--full] [--json PATH]`."""
    return bench_main("broadcast", run, argv)


if __name__ == "__main__":
    sys.exit(main())
