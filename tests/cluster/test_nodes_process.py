"""Cluster nodes as `python -m afactors --node-id ...` processes on one throwaway PostgreSQL schema: a node killed
with kill -9 and a node stopped with SIGSTOP past its lease; and the flags' bad input, refused at startup."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from afactors.cli import main
from afactors.store import Lease, Store
from afactors.store.pg_server import PgServer
from tests.test_host import read_url

LEASE = 1.5
CONVERSATION = "pay-run"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def node(url: str, node_id: str, runs: Path, sleep: str = "inf") -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A node serving Responses on a free port; stopped with SIGTERM (if still running) on the way out."""
    port = _free_port()
    argv = [
        sys.executable, "-m", "afactors", "--port", str(port), "--channel", "responses", "--store", url,
        "--node-id", node_id, "--advertise", f"http://127.0.0.1:{port}", "--lease-seconds", str(LEASE),
        "--target", "tests.cluster.slow_target:target", "--state-dir", str(runs.parent / f"unused-{node_id}"),
    ]  # fmt: skip
    env = {**os.environ, "AFACTORS_TEST_NODE": node_id, "AFACTORS_TEST_RUNS": str(runs), "AFACTORS_TEST_SLEEP": sleep}
    log = runs.parent / f"node-{node_id}.log"  # a file, not a pipe: a pipe no one reads would block a chatty node
    with (
        log.open("w") as errors,
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True, env=env) as proc,
    ):
        try:
            try:
                url = read_url(proc)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; node {node_id}'s log: {log.read_text()}") from None
            yield proc, url
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)


def start_slow_turn(base: str, runs: Path, node_id: str) -> str:
    """A background turn on the conversation whose target is running on `node_id` when this returns."""
    created = httpx.post(
        base + "/v1/responses", timeout=10,
        json={"model": "demo", "input": "slow", "background": True, "conversation": CONVERSATION},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 10
    while not (runs.exists() and runs.read_text().startswith(node_id)):
        assert time.monotonic() < deadline, "the turn never started"
        time.sleep(0.05)
    return str(created.json()["id"])


def wait_completed(base: str, response_id: str, within: float) -> dict[str, object]:
    deadline = time.monotonic() + within
    while True:
        body = httpx.get(f"{base}/v1/responses/{response_id}", timeout=5).json()
        if body["status"] == "completed" or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.1)


def stored(url: str) -> dict[str, object]:
    async def read() -> dict[str, object]:
        async with Store.open(url) as store:
            leases = dict(store.scan("leases"))
            return {"turns": store.count("turns"), "inbox": store.count("inbox"), "leases": leases}

    return trio.run(read)


@pytest.mark.slow
def test_kill_9_a_node_its_pending_turn_is_replayed_by_another_within_the_lease(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.new_store_url()
    runs = tmp_path / "runs.txt"
    with node(url, "a", runs) as (a, base_a), node(url, "b", runs, sleep="0") as (_, base_b):
        duplicate = subprocess.run(
            [sys.executable, "-m", "afactors", "--port", "0", "--store", url, "--node-id", "a",
             "--advertise", "http://127.0.0.1:9"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert duplicate.returncode == 1
        assert "cluster node 'a' is already running" in duplicate.stderr and "Traceback" not in duplicate.stderr

        cluster = httpx.get(base_b + "/status.json", timeout=5).json()["cluster"]
        assert cluster["node_id"] == "b" and cluster["url"] == base_b and cluster["live"] == ["a", "b"]
        response_id = start_slow_turn(base_a, runs, "a")
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=10)
        killed = time.monotonic()
        body = wait_completed(base_b, response_id, within=LEASE * 6)
        gap = time.monotonic() - killed
        assert body["status"] == "completed", body
        assert body["output"][0]["content"][0]["text"] == "b: done"
        assert gap < LEASE * 6
        cluster = httpx.get(base_b + "/status.json", timeout=5).json()["cluster"]
        assert cluster["live"] == ["b"] and cluster["taken_over"] == 1
    found = stored(url)
    assert found["turns"] == 1 and found["inbox"] == 0
    assert list(found["leases"].values()) == [Lease("", 2)]  # a held it at epoch 1, b took it at 2, then freed it
    assert [line.split()[0] for line in runs.read_text().splitlines()] == ["a", "b"]


@pytest.mark.slow
def test_a_node_stopped_past_its_lease_commits_nothing_when_it_resumes(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_store_url()
    runs = tmp_path / "runs.txt"
    with node(url, "a", runs, sleep="2") as (a, base_a), node(url, "b", runs, sleep="0") as (_, base_b):
        response_id = start_slow_turn(base_a, runs, "a")
        os.kill(a.pid, signal.SIGSTOP)  # mid-turn: its target sleeps 2 s, its heartbeat stops
        body = wait_completed(base_b, response_id, within=LEASE * 6)
        assert body["status"] == "completed" and body["output"][0]["content"][0]["text"] == "b: done"
        os.kill(a.pid, signal.SIGCONT)  # a's target finishes; its commit must be fenced
        deadline = time.monotonic() + 20
        while (fenced := httpx.get(base_a + "/status.json", timeout=5).json()["actors"]["fenced_commits"]) == 0:
            assert time.monotonic() < deadline, "node a's commit was not fenced"
            time.sleep(0.1)
        assert fenced == 1
        again = httpx.get(f"{base_b}/v1/responses/{response_id}", timeout=5).json()
        assert again["output"][0]["content"][0]["text"] == "b: done"  # a's answer never landed
    found = stored(url)
    assert found["turns"] == 1 and found["inbox"] == 0
    assert [line.split()[0] for line in runs.read_text().splitlines()] == ["a", "b"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--node-id", "a"], "--node-id runs a cluster node, which needs a PostgreSQL store"),
        (["--node-id", "a", "--state-dir", "x"], "needs a PostgreSQL store: --store postgresql://"),
        (["--node-id", "a", "--store", "postgresql://u@127.0.0.1:1/d"], "needs --advertise http://host:port"),
        (["--node-id", "a", "--store", "postgresql://u@127.0.0.1:1/d", "--advertise", "ftp://h:1"],
         "the advertised URL must look like http://host:port, not 'ftp://h:1'"),
        (["--node-id", "a", "--store", "postgresql://u@127.0.0.1:1/d", "--advertise", "http://h"],
         "must look like http://host:port"),
        (["--node-id", "a", "--store", "postgresql://u@127.0.0.1:1/d", "--advertise", "http://h:1/x"],
         "must look like http://host:port"),
        (["--node-id", "a/b", "--store", "postgresql://u@127.0.0.1:1/d", "--advertise", "http://h:1"],
         "a node id must be a non-empty printable name without '/'"),
        (["--node-id", "a", "--store", "postgresql://u@127.0.0.1:1/d", "--advertise", "http://h:1",
          "--lease-seconds", "0"], "--lease-seconds must be positive"),
        (["--advertise", "http://h:1"], "--advertise is for cluster nodes: give --node-id too"),
    ],
)  # fmt: skip
def test_bad_cluster_flags_are_refused_at_startup(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: host: ") and message in err
