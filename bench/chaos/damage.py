"""Damaged stores: a store written by a real server is truncated, emptied or bit-flipped; what starting on it
does (exit code, first line, time), and what `store verify` and `store salvage` report."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from bench.chaos.server import Server, run_cli
from bench.harness import free_port, progress

DATA = Path("data") / "data.mdb"


def _damage(state: Path, how: str, rng: random.Random) -> None:
    data = state / DATA
    if how == "emptied":
        data.write_bytes(b"")
    elif how == "truncated":
        os.truncate(data, data.stat().st_size // 2)
    elif how == "bitflip":
        raw = bytearray(data.read_bytes())
        for _ in range(64):  # flip bits past the two meta pages
            pos = rng.randrange(8192, len(raw))
            raw[pos] ^= 1 << rng.randrange(8)
        data.write_bytes(bytes(raw))
        (state / "afactors.lock").write_text("4242\n")  # as a crash leaves it: the start-up check reads it all


def run(quick: bool) -> dict[str, float]:
    rng = random.Random(7)
    metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="chaos-damage-") as scratch:
        base = Path(scratch) / "base"
        server = Server(base, free_port(), ["--channel", "responses"])
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in range(300 if quick else 2000):
                client.post("/v1/responses", json={"model": "demo", "input": f"m{n} " + "y" * 500})
        server.stop()
        for how in ("emptied", "truncated", "bitflip"):
            state = Path(scratch) / how
            shutil.copytree(base, state)
            _damage(state, how, rng)
            started = time.monotonic()
            server = Server(state, free_port(), ["--channel", "responses"])
            try:
                server.start()
                with httpx.Client(base_url=server.url, timeout=30) as client:
                    served = client.post("/v1/responses", json={"model": "demo", "input": "after"}).status_code
                first = f"started; a new turn answered {served}"
                code = server.stop()
            except RuntimeError:
                code = server.process.returncode if server.process is not None else -1
                lines = [line for line in server.log.read_text(errors="replace").splitlines() if line.strip()]
                first = lines[0] if lines else ""
                metrics[f"chaos.damage.{how}.one_error_line"] = float(len(lines) == 1 and first.startswith("error:"))
            seconds = time.monotonic() - started
            progress(f"damage {how}: exit {code} in {seconds:.1f} s: {first[:160]}")
            metrics[f"chaos.damage.{how}.exit_code"] = code
            verify = run_cli(["store", "verify", "--state-dir", str(state)])
            salvage = run_cli(["store", "salvage", "--state-dir", str(state), "--to", str(state) + "-saved"])
            total = next((line for line in salvage.stdout.splitlines() if line.startswith("total")), salvage.stderr)
            progress(f"damage {how}: verify exit {verify.returncode}; salvage: {total.strip()}")
            metrics[f"chaos.damage.{how}.verify_exit"] = verify.returncode
            if salvage.returncode == 0:
                read, lost = (int(x) for x in total.replace(",", "").split()[2:5:2])
                metrics[f"chaos.damage.{how}.salvaged"] = read
                metrics[f"chaos.damage.{how}.lost"] = lost
    return metrics
