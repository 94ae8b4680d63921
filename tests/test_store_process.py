"""The store across processes: kill -9 in a stream of commits (every durability: `fast` acknowledges from the OS
page cache, which outlives the process), a second process on the same store (both backends), and a write that
fails inside LMDB (a file size limit) failing only its own caller.

This file is also the child program: `python tests/test_store_process.py ROLE STATE_DIR [ARG ...]`.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from afactors.store import DATA_DIR, Generic, Put, Snapshot, Store, StoreError, StoreInUse

CHILD = [sys.executable, __file__]
COMMITTERS = 20


def _ack(line: str) -> None:
    os.write(1, f"{line}\n".encode())  # one write(2) per line: a line is in the pipe whole or not at all


# -- child roles --------------------------------------------------------------------------------------------


async def _commit_stream(state: str, durability: str = "durable", flush_interval: str = "") -> None:
    """Commit forever from COMMITTERS tasks, each commit three records; print each acknowledged commit id."""
    options: dict[str, object] = {"durability": durability}
    if flush_interval:
        options["flush_interval"] = float(flush_interval)

    async def committer(task: int) -> None:
        head = store.get("snapshots", f"task{task}")
        seq = 0 if head is None else head.seq
        while True:
            seq += 1
            cid = f"{task}.{seq}"
            await store.commit(
                [
                    Put("checkpoints", f"a/{cid}", Generic({"cid": cid, "pad": "x" * 3000})),
                    Put("checkpoints", f"b/{cid}", Generic({"cid": cid})),
                    Put("snapshots", f"task{task}", Snapshot(seq=seq, head=cid)),
                ]
            )
            _ack(cid)

    async with Store.open(state, **options) as store, trio.open_nursery() as nursery:
        for task in range(COMMITTERS):
            nursery.start_soon(committer, task)


async def _hold(state: str) -> None:
    """Hold the state directory until stdin closes."""
    async with Store.open(state):
        _ack("ready")
        await trio.to_thread.run_sync(sys.stdin.read)


async def _try_open(state: str) -> None:
    try:
        async with Store.open(state):
            _ack("opened")
    except StoreInUse as exc:
        _ack(f"locked: {exc}")


async def _file_size_limit(state: str) -> None:
    """Under a file size limit, commit 10 small records and one too big for the limit in one group."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
    outcomes: dict[str, str] = {}

    async def commit(name: str, size: int) -> None:
        try:
            await store.commit([Put("checkpoints", name, Generic({"pad": "x" * size}))])
            outcomes[name] = "ok"
        except StoreError as exc:
            outcomes[name] = f"error: {exc}"

    async with Store.open(state) as store:
        await commit("before", 100)
        size = (Path(state) / DATA_DIR / "data.mdb").stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + (512 << 10), resource.RLIM_INFINITY))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(commit, "small0", 100)
            await trio.testing.wait_all_tasks_blocked()  # its transaction is in the writer's thread: the rest queue
            for i in range(1, 10):  # ... and are written in one group once it is done
                nursery.start_soon(commit, f"small{i}", 100)
            nursery.start_soon(commit, "big", 4 << 20)
        async with trio.open_nursery() as nursery:  # too big again, alone in its transaction this time
            nursery.start_soon(commit, "big again", 4 << 20)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(3):  # queued behind it, written together after it failed
                nursery.start_soon(commit, f"queued{i}", 100)
        await commit("after", 100)
        _ack(json.dumps({"outcomes": outcomes, "stats": attrs.asdict(store.stats)}))


ROLES = {"stream": _commit_stream, "hold": _hold, "try-open": _try_open, "fsize": _file_size_limit}


# -- tests --------------------------------------------------------------------------------------------------


async def _read_lines(proc: trio.Process, until: int | None = None) -> list[str]:
    """Lines from the child's stdout: `until` of them, or all until EOF."""
    assert proc.stdout is not None
    data = b""
    while until is None or data.count(b"\n") < until:
        chunk = await proc.stdout.receive_some()
        if not chunk:
            break
        data += chunk
    complete, _, _ = data.rpartition(b"\n")
    return complete.decode().split("\n") if complete else []


@asynccontextmanager
async def _child(role: str, state: str | Path, *args: str, **kw: object) -> AsyncIterator[trio.Process]:
    """Run this file as a child in `role`; kill it (if still running) and close its pipes on exit."""
    argv = [*CHILD, role, str(state), *args]
    proc = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, **kw)  # type: ignore[arg-type]
    try:
        yield proc
    finally:
        with trio.CancelScope(shield=True):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    await stream.aclose()


async def _kill_9_in_commit_stream(location: str | Path, acks: int, *args: str) -> set[str]:
    """Start a committing child, kill -9 it after `acks` acknowledged commits; every commit id it acknowledged."""
    with trio.fail_after(60):
        async with _child("stream", location, *args) as proc:
            acked = set(await _read_lines(proc, until=acks))
            assert proc.poll() is None  # still committing when killed
            proc.kill()
            acked.update(await _read_lines(proc))  # what it acknowledged before it died
            assert await proc.wait() == -signal.SIGKILL
    return acked


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["durable", "fast"])
async def test_kill_9_keeps_every_acknowledged_commit_and_no_half_commit(
    store_location: str | Path, durability: str
) -> None:
    acked: set[str] = set()
    for _ in range(3):  # crash, restart on the same directory, crash again
        acked |= await _kill_9_in_commit_stream(store_location, 600, durability)
    assert len(acked) >= 1800
    await _assert_every_acknowledged_commit_whole(store_location, acked)


async def test_kill_9_of_a_fast_store_before_any_flush_keeps_every_acknowledged_commit(tmp_path: Path) -> None:
    # an hour between flushes: every acknowledged commit is in the OS page cache only when the process dies
    acked = await _kill_9_in_commit_stream(tmp_path, 300, "fast", "3600")
    await _assert_every_acknowledged_commit_whole(tmp_path, acked)


async def _assert_every_acknowledged_commit_whole(store_location: str | Path, acked: set[str]) -> None:
    async with Store.open(store_location) as store:
        a_ids = {key[2:] for key, _ in store.scan("checkpoints", "a/")}
        b_ids = {key[2:] for key, _ in store.scan("checkpoints", "b/")}
        heads = {task: store.get("snapshots", f"task{task}") for task in range(COMMITTERS)}
    assert acked <= a_ids  # every acknowledged commit survived...
    assert a_ids == b_ids  # ...and every commit is all there or not at all
    for task, head in heads.items():
        assert head is not None
        # the snapshot was committed with its records, and no commit before it is missing
        assert {cid for cid in a_ids if cid.startswith(f"{task}.")} == {f"{task}.{n}" for n in range(1, head.seq + 1)}


async def test_a_second_process_on_the_store_fails_at_once_naming_it_and_the_pid(store_location: str | Path) -> None:
    with trio.fail_after(20):
        async with _child("hold", store_location, stdin=subprocess.PIPE) as holder:
            assert holder.stdin is not None
            assert await _read_lines(holder, until=1) == ["ready"]
            with pytest.raises(StoreInUse) as caught:
                async with Store.open(store_location):
                    pass
            where = str(store_location) if isinstance(store_location, Path) else store_location.rpartition("%3D")[2]
            assert where in str(caught.value)  # the state directory, or the PostgreSQL schema
            assert f"already in use by process {holder.pid}" in str(caught.value)
            await holder.stdin.aclose()
            assert await holder.wait() == 0

        async with Store.open(store_location), _child("try-open", store_location) as child:  # now this process is named
            [line] = await _read_lines(child)
            assert line.startswith("locked: ")
            assert where in line
            assert f"is already in use by process {os.getpid()}" in line
            assert await child.wait() == 0


async def test_a_write_failing_inside_lmdb_fails_only_its_caller(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with _child("fsize", tmp_path) as proc:
            [line] = await _read_lines(proc)
            assert await proc.wait() == 0
    report = json.loads(line)
    outcomes, stats = report["outcomes"], report["stats"]
    assert outcomes.pop("big").startswith("error: commit failed: ")
    assert outcomes.pop("big again").startswith("error: commit failed: ")
    assert set(outcomes.values()) == {"ok"} and len(outcomes) == 15
    assert stats["split_batches"] == 1  # the big write was grouped with the small ones, which still committed
    assert stats["failed_commits"] == 2 and stats["largest_batch"] == 10
    async with Store.open(tmp_path) as store:
        assert sorted(key for key, _ in store.scan("checkpoints")) == sorted(outcomes)


if __name__ == "__main__":
    trio.run(ROLES[sys.argv[1]], *sys.argv[2:])
