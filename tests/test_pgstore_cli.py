"""`python -m afactors --store postgresql://...`: a host on the PostgreSQL store, and the operator commands on it.
Real processes against a throwaway PostgreSQL server on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from afactors.store import Store
from afactors.store.pg_server import PgServer
from tests.test_host import read_url

AFACTORS = [sys.executable, "-m", "afactors"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFACTORS, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_the_cli_serves_on_postgresql_and_a_second_host_fails_clearly(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_store_url()
    argv = [*AFACTORS, "--port", "0", "--channel", "responses", "--store", url, "--state-dir", str(tmp_path / "lmdb")]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as host:
        try:
            base = read_url(host)
            assert httpx.get(base + "/readiness", timeout=5).json()["status"] == "healthy"
            reply = httpx.post(base + "/v1/responses", json={"model": "demo", "input": "hello"}, timeout=30)
            assert reply.status_code == 200, reply.text
            assert reply.json()["status"] == "completed"
            second = _run("--port", "0", "--store", url)
            assert second.returncode == 1
            assert f"is already in use by process {host.pid}" in second.stderr
            assert "Traceback" not in second.stderr
            status = httpx.get(base + "/status.json", timeout=5).json()["store"]
            assert status["records"]["turns"] == 1 and status["file_bytes"] > 0
        finally:
            host.send_signal(signal.SIGTERM)
            assert host.wait(timeout=30) == 0
    assert not (tmp_path / "lmdb").exists()  # nothing of the state went to the state directory

    async def stored() -> tuple[int, int]:
        async with Store.open(url) as store:
            return store.count("turns"), store.count("responses")

    assert trio.run(stored) == (1, 1)
    inspect = _run("inspect", "--store", url, "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert '"turns": 1' in inspect.stdout


@pytest.mark.slow
def test_lmdb_only_commands_say_they_are_not_available_for_postgresql(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_store_url()
    compact = _run("compact", "--store", url, str(tmp_path / "copy"))
    assert compact.returncode == 1
    assert "compact is not available for the PostgreSQL store" in compact.stderr
    for command in ("verify", "salvage"):
        extra = ["--to", str(tmp_path / "copy")] if command == "salvage" else []
        out = _run("store", command, "--store", url, *extra)
        assert out.returncode == 1
        assert f"store {command} is not available for the PostgreSQL store" in out.stderr
    assert not (tmp_path / "copy").exists()


@pytest.mark.slow
def test_an_unreachable_postgresql_store_is_one_error_line(pg_server: PgServer) -> None:
    out = _run("--port", "0", "--store", f"postgresql://afactors@127.0.0.1:{pg_server.port}/no_such_database")
    assert out.returncode == 1
    assert out.stderr.startswith("error: cannot connect to the PostgreSQL store")
    assert "Traceback" not in out.stderr
