"""Starting and stopping `python -m afactors` processes for the chaos scenarios."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.common import REPO_ROOT

STARTUP_TIMEOUT = 60.0


class Server:
    """One `python -m afactors` process on a fixed port; `log` holds its stdout and stderr."""

    def __init__(self, state: Path, port: int, args: Sequence[str] = (), *, nofile: int | None = None) -> None:
        self.state, self.port, self.args, self.nofile = state, port, list(args), nofile
        self.url = f"http://127.0.0.1:{port}"
        self.log = state.parent / f"{state.name}-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "afactors", "--port", str(self.port), "--state-dir", str(self.state), *self.args]

    def start(self, *, wait: bool = True) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        limit = self.nofile

        def limits() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.argv(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=limits)  # fmt: skip
        if wait:
            self.wait_ready()
        return self.process

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/readiness", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not start: {self.tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def rss_mb(self, field: str = "VmRSS") -> float:
        """The process's resident memory in MiB (`RssAnon`: its own heap; `RssFile`: mapped file pages, such as
        the LMDB data file's pages it has read)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def run_cli(args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "afactors", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip
