"""Processes of a test cluster: `python -m afactors` nodes and HAProxy on loopback, each in its own process group,
with the faults a test inflicts (kill -9, SIGSTOP, SIGCONT) and what a node reports (`/status.json`, `/metrics`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from prometheus_client.parser import text_string_to_metric_families

STARTUP_TIMEOUT = 60.0
"""Seconds a process gets to become ready."""

STOP_TIMEOUT = 20.0
"""Seconds a process gets to exit after SIGTERM before it is killed."""


class ClusterError(RuntimeError):
    """A process of the cluster did not start, or answered what it should not: the message says which and why."""


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `url`: (status, body); an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@attrs.define(eq=False)
class Process:
    """One command run in its own process group (so a fault reaches all of it), its output in `log`.

    `pids` lists every process it has been (it can be started again after a kill). `ready` is the URL that
    answers 200 once it serves.
    """

    name: str
    argv: list[str]
    log: Path
    ready: str
    env: dict[str, str] = attrs.Factory(dict)
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = attrs.Factory(list)
    paused: bool = False

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start it and wait until `ready` answers 200 (`ClusterError` if it exits or does not within `timeout`)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.pids.append(self.process.pid)
        self.paused = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ClusterError(f"{self.name} exited with {self.process.returncode} before serving: {self.tail()}")
            try:
                if http_get(self.ready, timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise ClusterError(f"{self.name} did not serve {self.ready} within {timeout:.0f} s: {self.tail()}")

    @property
    def running(self) -> bool:
        """Started and not exited (a paused process is running)."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        """The current process id."""
        if self.process is None:
            raise ClusterError(f"{self.name} was never started")
        return self.process.pid

    def signal(self, signum: int) -> None:
        """Send `signum` to its whole process group (nothing if it has exited)."""
        if self.running:
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        """kill -9, and reap it."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT)

    def pause(self) -> None:
        """SIGSTOP: it keeps its sockets (connections are accepted by the kernel) but runs nothing."""
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT."""
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> int | None:
        """SIGTERM (after SIGCONT, if paused), then SIGKILL if it has not exited within `STOP_TIMEOUT`; the exit
        code (None if it was never started)."""
        if self.process is None:
            return None
        if self.running:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode

    def tail(self, lines: int = 8) -> str:
        """The last lines of its output, on one line."""
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return "(no output)"
        return " | ".join(text[-lines:]) or "(no output)"


@attrs.define(eq=False)
class Node(Process):
    """A `python -m afactors` node; `url` is its base URL."""

    url: str = ""

    def status(self) -> dict[str, Any]:
        """Its `/status.json`."""
        code, body = http_get(self.url + "/status.json")
        if code != 200:
            raise ClusterError(f"{self.name}: /status.json answered {code}: {body[:200]!r}")
        report: dict[str, Any] = json.loads(body)
        return report

    def metrics(self) -> dict[str, float]:
        """Its `/metrics` samples: `name` or `name{label="value",...}` (labels sorted) -> value."""
        code, body = http_get(self.url + "/metrics")
        if code != 200:
            raise ClusterError(f"{self.name}: /metrics answered {code}: {body[:200]!r}")
        return parse_metrics(body.decode())


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition as `name{label="value",...}` (labels sorted; no braces without labels) -> value."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return samples


def node_argv(
    name: str, port: int, store: str, *, cluster: bool, target: str, state_dir: Path, extra: Sequence[str] = ()
) -> list[str]:
    """The command of node `name`: the Responses channel, `target`, on 127.0.0.1:`port`, on `store` (a
    `postgresql://` URL, or "" for an LMDB state directory in `state_dir`); a cluster member with `cluster`."""
    argv = [sys.executable, "-m", "afactors", "--host", "127.0.0.1", "--port", str(port), "--channel", "responses"]
    argv += ["--target", target, "--state-dir", str(state_dir)]
    if store:
        argv += ["--store", store]
    if cluster:
        argv += ["--node-id", name, "--advertise", f"http://127.0.0.1:{port}"]
    return [*argv, *extra]
