"""File descriptors: the server under `ulimit -n 1024` while 50 clients send one request per connection and
close, and 2,000 idle connections are held open; a well-behaved client (one pooled connection, opened first)
keeps asking. Afterwards: how many of its requests were answered, what the hammering clients saw, and how many
server sockets were left in CLOSE-WAIT."""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

import httpx
import trio

from bench.chaos.server import Server
from bench.harness import free_port, progress

REQUEST = b"GET /readiness HTTP/1.1\r\nhost: chaos\r\n\r\n"


def close_wait(port: int) -> int:
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "08":
            count += 1
    return count


async def _one_shot(port: int, until: float, seen: dict[str, int]) -> None:
    while trio.current_time() < until:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(REQUEST)
                with trio.fail_after(5):
                    data = await stream.receive_some(4096)
            key = "200" if b" 200 " in data[:20] else data[9:12].decode(errors="replace") or "closed"
        except (OSError, trio.BrokenResourceError, trio.TooSlowError):
            key = "error"
        seen[key] = seen.get(key, 0) + 1


async def _idle(port: int, count: int, until: float, opened: list[int]) -> None:
    streams = []
    for _ in range(count):
        try:
            streams.append(await trio.open_tcp_stream("127.0.0.1", port))
            opened[0] += 1
        except OSError:
            opened[1] += 1
    await trio.sleep_until(until)
    for stream in streams:
        await stream.aclose()


def run(quick: bool) -> dict[str, float]:
    seconds = 20.0 if quick else 60.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 8192), max(hard, 8192)))
    with tempfile.TemporaryDirectory(prefix="chaos-fds-") as scratch:
        port = free_port()
        server = Server(Path(scratch) / "state", port, ["--durability", "unsafe"], nofile=1024)
        server.start()
        good = {"ok": 0, "failed": 0}
        seen: dict[str, int] = {}
        opened = [0, 0]

        async def main() -> None:
            until = trio.current_time() + seconds
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as client, trio.open_nursery() as nursery:
                await client.get("/readiness")  # its pooled connection exists before the flood
                nursery.start_soon(_idle, port, 2000, until, opened)
                for _ in range(50):
                    nursery.start_soon(_one_shot, port, until, seen)
                while trio.current_time() < until:
                    try:
                        ok = (await client.get("/readiness")).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    good["ok" if ok else "failed"] += 1
                    await trio.sleep(0.05)

        trio.run(main)
        left = close_wait(port)
        alive = server.process is not None and server.process.poll() is None
        server.stop()
    progress(f"fds: well-behaved {good}, one-shot clients {seen}, idle opened {opened[0]}, CLOSE-WAIT {left}")
    total = sum(seen.values()) or 1
    return {
        "chaos.fds.good_ok_ratio": good["ok"] / max(1, good["ok"] + good["failed"]),
        "chaos.fds.one_shot_requests": total,
        "chaos.fds.one_shot_200_ratio": seen.get("200", 0) / total,
        "chaos.fds.one_shot_503": seen.get("503", 0),
        "chaos.fds.idle_opened": opened[0],
        "chaos.fds.close_wait_after": left,
        "chaos.fds.server_alive": float(alive),
    }
