"""Memory: one tenant sends a stream of 8 MB inputs (to four conversations it keeps going); the server's heap
(RssAnon) is sampled throughout and after 15 s idle, against its baseline plus the history budget. Pages of the
LMDB data file the process has read count in its RSS as mapped file pages (RssFile): the kernel reclaims those
under memory pressure, so they are reported apart."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from bench.chaos.server import Server
from bench.harness import free_port, progress

INPUT_BYTES = 8 << 20
BUDGET_MB = 64  # --history-budget-mb for this run (and --tenant-budget-mb 32)


def run(quick: bool) -> dict[str, float]:
    inputs = 20 if quick else 40
    with tempfile.TemporaryDirectory(prefix="chaos-mem-") as scratch:
        args = ["--channel", "responses", "--durability", "unsafe", "--history-budget-mb", str(BUDGET_MB),
                "--tenant-budget-mb", str(BUDGET_MB // 2)]  # fmt: skip
        server = Server(Path(scratch) / "state", free_port(), args)
        server.start()
        baseline = server.rss_mb("RssAnon")
        peak = baseline
        big = "x" * INPUT_BYTES
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for n in range(inputs):
                body = {"model": "demo", "input": f"{n} {big}", "conversation": f"conv_big{n % 4}"}
                assert client.post("/v1/responses", json=body).status_code == 200
                peak = max(peak, server.rss_mb("RssAnon"))
        time.sleep(15)
        idle, mapped = server.rss_mb("RssAnon"), server.rss_mb("RssFile")
        server.stop()
    progress(f"memory: heap (RssAnon) baseline {baseline:.0f} MB, peak {peak:.0f} MB, after 15 s idle {idle:.0f} MB;"
             f" mapped store pages (RssFile) {mapped:.0f} MB")  # fmt: skip
    return {
        "chaos.memory.inputs_8mb": inputs,
        "chaos.memory.baseline_mb": baseline,
        "chaos.memory.peak_mb": peak,
        "chaos.memory.idle_mb": idle,
        "chaos.memory.budget_mb": BUDGET_MB,
        "chaos.memory.idle_over_baseline_mb": idle - baseline,
        "chaos.memory.mapped_file_mb": mapped,
    }
