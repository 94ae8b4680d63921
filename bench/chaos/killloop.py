"""kill -9 in a loop under concurrent load, with an acknowledgement ledger.

Clients each post numbered inputs to their own Responses conversation, one after the other; an input whose
POST answered 200 is acknowledged. The server is killed with SIGKILL every `interval` seconds and restarted on
the same port. At the end the store is read directly: every acknowledged input must be committed exactly once,
unacknowledged ones at most once, and each conversation's turns in the order they were sent.
"""

from __future__ import annotations

import re
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import httpx
import trio

from afactors.store import Store
from bench.chaos.server import Server
from bench.harness import free_port, progress

_TAG = re.compile(r"client(\d+)-(\d+)")


async def _client(n: int, url: str, until: float, acked: list[tuple[int, int]], sent: list[int]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        seq = 0
        while trio.current_time() < until:
            body = {"model": "demo", "input": f"client{n}-{seq}", "conversation": f"conv_chaos{n}"}
            try:
                resp = await http.post("/v1/responses", json=body)
                if resp.status_code == 200 and resp.json().get("status") == "completed":
                    acked.append((n, seq))
            except httpx.HTTPError:
                await trio.sleep(0.05)  # the server is down: the next input waits for it
            sent[n] = seq
            seq += 1


async def _load(url: str, clients: int, seconds: float, acked: list[tuple[int, int]], sent: list[int]) -> None:
    until = trio.current_time() + seconds
    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(_client, n, url, until, acked, sent)


async def _committed(state: Path) -> dict[int, list[int]]:
    """Each client's inputs in its conversation's committed turn order."""
    found: dict[int, list[tuple[int, int]]] = {}
    async with Store.open(state) as store:
        for _, turn in store.scan("turns"):
            for message in turn.input:
                match = _TAG.fullmatch(message.text)
                if match:
                    found.setdefault(int(match[1]), []).append((turn.seq, int(match[2])))
    return {client: [seq for _, seq in sorted(turns)] for client, turns in found.items()}


def run(quick: bool) -> dict[str, float]:
    kills, interval, clients = (5, 5.0, 8) if quick else (20, 5.0, 16)
    with tempfile.TemporaryDirectory(prefix="chaos-kill-") as scratch:
        server = Server(Path(scratch) / "state", free_port(), ["--channel", "responses", "--durability", "durable"])
        server.start()
        acked: list[tuple[int, int]] = []
        sent = [0] * clients

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_load, server.url, clients, kills * interval + 3, acked, sent)
                for _ in range(kills):
                    await trio.sleep(interval)
                    server.kill()
                    await trio.to_thread.run_sync(server.start)

        started = time.monotonic()
        trio.run(main)
        server.stop()
        committed = trio.run(_committed, server.state)
    lost = duplicated = disordered = 0
    for client in range(clients):
        seqs = committed.get(client, [])
        lost += len({s for c, s in acked if c == client} - set(seqs))
        duplicated += len(seqs) - len(set(seqs))
        disordered += sum(1 for a, b in pairwise(seqs) if b <= a)
    progress(f"kill loop: {kills} kills, {len(acked)} acknowledged, {lost} lost, {duplicated} duplicated")
    return {
        "chaos.kill.kills": kills,
        "chaos.kill.acknowledged": len(acked),
        "chaos.kill.lost": lost,
        "chaos.kill.duplicated": duplicated,
        "chaos.kill.out_of_order": disordered,
        "chaos.kill.seconds": time.monotonic() - started,
    }
