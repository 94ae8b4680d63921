"""A full disk: the state directory on a small tmpfs (needs root), filled up while clients keep asking; then
space is freed. What clients get, what /readiness says, whether the process stays up and writes resume."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.chaos.server import Server
from bench.harness import free_port, progress


def _fill(path: Path) -> None:
    with open(path, "wb") as file:
        while True:
            try:
                file.write(b"\0" * (1 << 20))
                file.flush()
            except OSError:
                return


def run(quick: bool) -> dict[str, float]:
    if os.geteuid() != 0:
        progress("disk: skipped (mounting a tmpfs needs root)")
        return {}
    with tempfile.TemporaryDirectory(prefix="chaos-disk-") as scratch:
        mount = Path(scratch) / "small"
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
        try:
            server = Server(mount / "state", free_port(), ["--channel", "responses", "--durability", "durable"])
            server.log = Path(scratch) / "server.log"
            server.start()
            statuses: dict[int, int] = {}
            with httpx.Client(base_url=server.url, timeout=30) as client:

                def ask(text: str) -> int:
                    code = client.post("/v1/responses", json={"model": "demo", "input": text}).status_code
                    statuses[code] = statuses.get(code, 0) + 1
                    return code

                before = ask("before")
                _fill(mount / "filler")
                during = [ask(f"during {n}") for n in range(20)]
                readiness_full = client.get("/readiness").json().get("status")
                reads_ok = client.get("/readiness").status_code in (200, 503)
                alive_full = server.process is not None and server.process.poll() is None
                (mount / "filler").unlink()
                started = time.monotonic()
                resumed = None
                while time.monotonic() - started < 10:
                    if ask("after") == 200:
                        resumed = time.monotonic() - started
                        break
                    time.sleep(0.1)
                readiness_after = client.get("/readiness").json().get("status")
            exit_code = server.stop()
        finally:
            subprocess.run(["umount", "-l", str(mount)])
    progress(f"disk: before {before}, during {sorted(set(during))}, readiness {readiness_full!r} -> "
             f"{readiness_after!r}, resumed after {resumed} s, exit {exit_code}")  # fmt: skip
    return {
        "chaos.disk.answered_507": sum(1 for code in during if code == 507),
        "chaos.disk.answered_5xx_other": sum(1 for code in during if code >= 500 and code != 507),
        "chaos.disk.readiness_degraded": float(readiness_full == "degraded"),
        "chaos.disk.process_alive": float(alive_full and reads_ok),
        "chaos.disk.resumed_after_s": -1.0 if resumed is None else resumed,
        "chaos.disk.clean_exit": float(exit_code == 0),
    }
