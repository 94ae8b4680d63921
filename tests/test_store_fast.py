"""LMDB `fast`: commits acknowledged from the page cache, flushed by the store's flusher within `flush_interval`,
flushed at close, and read whole before serving after the OS went down while some were unflushed.

The flusher runs on trio's clock: these tests drive a `MockClock` by hand, so "within the window" is checked in
virtual time, not measured. (A process crash in the middle of `fast` commits: tests/test_store_process.py.)
"""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import lmdb
import pytest
import trio
from trio.testing import MockClock, wait_all_tasks_blocked

from afactors.store import DATA_DIR, Generic, Put, Store, StoreDamaged
from afactors.store._integrity import boot_id, read_marker, write_marker
from tests.test_store_integrity import DATA, zero_middle_page

INTERVAL = 0.25  # and its fractions below: binary fractions, so virtual times add up exactly


async def _until_flushed(store: Store, flushes: int) -> None:
    """Let the flusher's flush (a worker thread, real time) finish; the mock clock stands still meanwhile."""
    give_up = time.monotonic() + 60  # a hang guard, not a timing assertion
    while store.stats.flushes < flushes:
        assert time.monotonic() < give_up, f"no flush #{flushes}"
        await trio.lowlevel.checkpoint()


def _last_txnid(state: Path) -> int:
    env = lmdb.open(str(state / DATA_DIR), readonly=True, lock=False, max_dbs=32)
    try:
        return int(env.info()["last_txnid"])
    finally:
        env.close()


async def test_a_fast_commit_is_flushed_flush_interval_after_it_is_acknowledged(
    state_dir: Path, mock_clock: MockClock
) -> None:
    async with Store.open(state_dir, durability="fast", flush_interval=INTERVAL) as store:
        await store.commit([Put("aliases", "a", Generic({"n": 1}))])
        await wait_all_tasks_blocked()
        assert store.stats.flushes == 0  # acknowledged before any flush
        mock_clock.jump(INTERVAL * 0.75)
        await wait_all_tasks_blocked()
        assert store.stats.flushes == 0
        mock_clock.jump(INTERVAL * 0.25)
        await _until_flushed(store, 1)

        for n in range(3):  # one flush covers every commit acknowledged before it
            await store.commit([Put("aliases", f"b{n}", Generic({"n": n}))])
            mock_clock.jump(INTERVAL / 4)
        await wait_all_tasks_blocked()
        assert store.stats.flushes == 1
        mock_clock.jump(INTERVAL / 4)
        await _until_flushed(store, 2)
        await wait_all_tasks_blocked()
        assert store.stats.flushes == 2  # and nothing is left to flush
        assert store.stats.commits == 4


async def test_closing_a_fast_store_flushes_it_and_clears_the_boot_from_the_marker(state_dir: Path) -> None:
    async with Store.open(state_dir, durability="fast", flush_interval=3600) as store:
        marker = read_marker(state_dir / DATA_DIR)
        assert marker is not None and marker.open_boot == boot_id() != ""  # written at open, before any commit
        for n in range(20):
            await store.commit([Put("aliases", f"k{n}", Generic({"n": n}))])
        assert store.stats.flushes == 0  # the flusher's turn is an hour away
    marker = read_marker(state_dir / DATA_DIR)
    assert marker is not None
    assert marker.txnid == _last_txnid(state_dir)  # written only once the close's flush returned
    assert marker.open_boot is None


async def test_a_durable_store_flushes_every_commit_and_never_names_a_boot(state_dir: Path) -> None:
    async with Store.open(state_dir) as store:
        await store.commit([Put("aliases", "a", Generic())])
        marker = read_marker(state_dir / DATA_DIR)
        assert marker is not None and marker.open_boot is None
        assert store.stats.flushes == 0  # no flusher: each commit flushed before it returned


async def test_a_fast_commit_waits_for_the_flush_when_flushes_fall_behind(
    state_dir: Path, mock_clock: MockClock
) -> None:
    committed: list[str] = []

    async def commit(key: str) -> None:
        await store.commit([Put("aliases", key, Generic())])
        committed.append(key)

    async with Store.open(state_dir, durability="fast", flush_interval=INTERVAL) as store:
        await commit("first")
        async with trio.open_nursery() as nursery:
            async with store._thread:  # as if the disk took this long to flush: no flush can run meanwhile
                mock_clock.jump(INTERVAL)  # the flusher starts its flush and waits for the disk
                await wait_all_tasks_blocked()
                await commit("second")  # unflushed since now
                mock_clock.jump(INTERVAL * 2.5)  # the second commit is overdue for a flush
                nursery.start_soon(commit, "third")
                await wait_all_tasks_blocked()
                assert committed == ["first", "second"]  # not acknowledged before the flush
                assert store.stats.flushes == 0
            await _until_flushed(store, 1)
        assert committed == ["first", "second", "third"]
        assert store.stats.flushes == 2  # the flusher's, then the writer's before acknowledging "third"


async def _fast_store_left_open_by_an_os_crash(state: Path, boot: str) -> None:
    """A `fast` store whose marker says it was open on boot `boot` (the lock file's pid lost with the OS)."""
    async with Store.open(state, durability="fast") as store:
        for start in range(0, 3000, 500):
            puts = [Put("aliases", f"k{i:06d}", Generic({"pad": "x" * 400})) for i in range(start, start + 500)]
            await store.commit(puts)
    marker = read_marker(state / DATA_DIR)
    assert marker is not None
    write_marker(state / DATA_DIR, attrs.evolve(marker, open_boot=boot))


async def test_after_an_os_crash_a_fast_store_is_read_whole_and_refused_if_damaged(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _fast_store_left_open_by_an_os_crash(state_dir, "boot-before-the-crash")
    async with Store.open(state_dir, durability="fast", verify_after_crash=False) as store:  # undamaged: starts
        assert store.count("aliases") == 3000
    assert "was open with unflushed commits when the OS went down: reading it whole" in caplog.text
    marker = read_marker(state_dir / DATA_DIR)
    assert marker is not None and marker.open_boot is None  # closed cleanly since

    await _fast_store_left_open_by_an_os_crash(state_dir, "boot-before-the-crash")
    zero_middle_page(state_dir / DATA)  # pages that reached the disk out of order
    with pytest.raises(StoreDamaged, match="was open with unflushed commits when the OS went down and is damaged") as e:
        async with Store.open(state_dir, durability="fast", verify_after_crash=False):
            pass
    assert f"python -m afactors store salvage --state-dir {state_dir} --to NEW_DIR" in str(e.value)


async def test_a_fast_store_left_open_on_this_boot_is_not_read_whole(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the same marker on this boot: the process died, the OS kept its page cache; no OS crash to check for
    await _fast_store_left_open_by_an_os_crash(state_dir, boot_id())
    zero_middle_page(state_dir / DATA)
    async with Store.open(state_dir, durability="fast", verify_after_crash=False):
        pass
    assert "went down" not in caplog.text


async def test_a_bad_flush_interval_is_a_clear_error(state_dir: Path) -> None:
    with pytest.raises(ValueError, match="flush_interval must be positive, not 0"):
        async with Store.open(state_dir, durability="fast", flush_interval=0):
            pass
