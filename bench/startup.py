"""Startup: `python -m afactors` from spawn to its first answered request.

`python -m bench.startup [--quick|--full] [--json PATH]`. Each run spawns `python -m afactors --target
bench.targets:echo` on a fresh state directory (every installed channel, the default), pinned to SERVER_CPU, and
polls POST /v1/responses from this process (pinned to LOAD_CPU) until it answers 200:

* `startup.readiness_s`: spawn to that 200, wall clock;
* `startup.cpu_s`: CPU time the server had used by then (imports, store, channels, the first turn): the figure
  that does not depend on how busy the machine is;
* `startup.readiness_s.responses_only` / `startup.cpu_s.responses_only`: the same with `--channel responses`;
* `startup.readiness_s.no_bytecode` / `startup.cpu_s.no_bytecode`: every channel, with an empty bytecode cache
  (`PYTHONPYCACHEPREFIX` set to a fresh directory): every module compiled from source, as on a first start.

The servers run as an installed Python does: they read and write bytecode (`__pycache__`) even when this
process was started with `PYTHONDONTWRITEBYTECODE` (without bytecode, compiling every module from source costs
more than twice the CPU of a start); an untimed start first fills the cache.

Quick: 3 runs each; full: 5.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

from bench.common import LOAD_CPU, MIN_RUNS, REPO_ROOT, SERVER_CPU, Metrics, bench_main, pin, summarize
from bench.harness import free_port, progress

BODY = b'{"model": "m", "input": "hello"}'


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a server: this one, with PYTHONPATH at the repository and bytecode written and read."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def spawn(
    port: int, state: Path, target: str, log: Path, channels: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m afactors` serving `target` (durable) on `port`, pinned to SERVER_CPU, output appended to `log`."""
    argv = [sys.executable, "-m", "afactors", "--target", target, "--port", str(port), "--state-dir", str(state),
            "--durability", "durable", *(arg for name in channels for arg in ("--channel", name))]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env or server_env(), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    pin(process.pid, SERVER_CPU)
    return process


def answered(port: int) -> bool:
    """Whether a new POST /v1/responses answers 200 now."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/responses", BODY, {"Content-Type": "application/json"})
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_ready(process: subprocess.Popen[bytes], port: int, spawned: float, timeout: float = 120.0) -> float:
    """Seconds from `spawned` (monotonic) until `port` answers a new request 200."""
    deadline = spawned + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the host exited with {process.returncode} before serving")
        if answered(port):
            return time.monotonic() - spawned
        time.sleep(0.005)
    raise RuntimeError(f"the host did not answer within {timeout:.0f} s")


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """User + system CPU the process has used."""
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def one_start(channels: tuple[str, ...] = (), *, bytecode: bool = True) -> tuple[float, float]:
    """(seconds to readiness, server CPU seconds by then) of one fresh start; without `bytecode`, every module is
    compiled from source (an empty bytecode cache of its own)."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        port, log = free_port(), Path(scratch) / "server.log"
        env = server_env() if bytecode else server_env(PYTHONPYCACHEPREFIX=str(Path(scratch) / "pycache"))
        spawned = time.monotonic()
        process = spawn(port, Path(scratch) / "state", "bench.targets:echo", log, channels, env)
        try:
            ready = wait_ready(process, port, spawned)
            return ready, cpu_seconds(process)
        finally:
            process.terminate()
            process.wait(timeout=30)


def run(quick: bool) -> Metrics:
    """Alternating starts: every channel, the Responses channel only, every channel without bytecode."""
    runs = MIN_RUNS if quick else 5
    pin(0, LOAD_CPU)
    one_start()  # fills the bytecode cache
    samples: dict[str, list[float]] = defaultdict(list)
    shapes = (("", (), True), (".responses_only", ("responses",), True), (".no_bytecode", (), False))
    for number in range(1, runs + 1):
        for suffix, channels, bytecode in shapes:
            ready, cpu = one_start(channels, bytecode=bytecode)
            samples[f"startup.readiness_s{suffix}"].append(ready)
            samples[f"startup.cpu_s{suffix}"].append(cpu)
            progress(f"  run {number}/{runs} {suffix[1:] or 'all channels':<15} ready {ready:.3f} s  cpu {cpu:.3f} s")
    metrics = summarize(samples)
    metrics["startup.load_average"] = psutil.getloadavg()[0]
    return metrics


if __name__ == "__main__":
    sys.exit(bench_main("startup", run))
