"""Damaged and full stores: refused at open with a clear error, salvaged by the CLI, full disks survived."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from afactors.store import DATA_DIR, Generic, Put, Store, StoreDamaged, StoreFull, salvage, verify
from afactors.store._integrity import free_bytes

DATA = Path(DATA_DIR) / "data.mdb"


async def fill(state: Path, n: int = 2000, kind: str = "aliases") -> None:
    async with Store.open(state) as store:
        for start in range(0, n, 500):
            await store.commit([Put(kind, f"k{i:06d}", Generic({"pad": "x" * 400})) for i in range(start, start + 500)])


def sh(*args: str) -> int:
    return subprocess.run(args).returncode


def fill_disk(path: Path) -> None:
    """Write zeros to `path` until the filesystem is full."""
    with open(path, "wb") as file:
        while True:
            try:
                file.write(b"\x00" * (64 << 10))
                file.flush()
            except OSError:
                return


def zero_middle_page(data: Path) -> None:
    with open(data, "r+b") as file:
        file.seek((data.stat().st_size // 4096 // 2) * 4096)
        file.write(b"\x00" * 4096)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "afactors", *args], capture_output=True, text=True, timeout=60)


async def test_an_emptied_data_file_is_refused_not_started_as_an_empty_store(state_dir: Path) -> None:
    await fill(state_dir, 500)
    (state_dir / DATA).write_bytes(b"")
    with pytest.raises(StoreDamaged, match="is empty, but transaction"):
        async with Store.open(state_dir):
            pass
    (state_dir / DATA).unlink()
    with pytest.raises(StoreDamaged, match="is missing"):
        async with Store.open(state_dir):
            pass


async def test_a_truncated_data_file_is_refused_at_open_instead_of_sigbus(state_dir: Path) -> None:
    await fill(state_dir)
    data = state_dir / DATA
    os.truncate(data, data.stat().st_size // 2)
    with pytest.raises(StoreDamaged, match="is truncated"):
        async with Store.open(state_dir):
            pass


async def test_a_data_file_older_than_the_marker_is_refused(state_dir: Path, tmp_path: Path) -> None:
    await fill(state_dir, 500)
    shutil.copy(state_dir / DATA, tmp_path / "old.mdb")
    await fill(state_dir, 1000, kind="checkpoints")
    shutil.copy(tmp_path / "old.mdb", state_dir / DATA)
    with pytest.raises(StoreDamaged, match="is older than the store"):
        async with Store.open(state_dir):
            pass


@pytest.mark.slow
async def test_every_store_error_at_start_is_one_error_line_from_the_cli(state_dir: Path, tmp_path: Path) -> None:
    await fill(state_dir)
    os.truncate(state_dir / DATA, (state_dir / DATA).stat().st_size // 2)
    (tmp_path / "afile").write_text("x")
    garbage = tmp_path / "garbage"
    (garbage / DATA_DIR).mkdir(parents=True)
    (garbage / DATA).write_bytes(b"not lmdb" * 2000)
    for state in (state_dir, tmp_path / "afile", garbage):
        result = run_cli("--state-dir", str(state), "--port", "0")
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@pytest.mark.slow
async def test_salvage_copies_every_readable_record_and_reports_the_lost(state_dir: Path, tmp_path: Path) -> None:
    await fill(state_dir, 3000)
    assert not verify(state_dir).damaged
    data = state_dir / DATA
    os.truncate(data, data.stat().st_size * 2 // 3)
    checked = run_cli("store", "verify", "--state-dir", str(state_dir))
    assert checked.returncode == 1 and "truncated" in checked.stdout and checked.stdout.strip().endswith("damaged")
    report = salvage(state_dir, tmp_path / "saved")
    aliases = next(k for k in report.kinds if k.kind == "aliases")
    assert aliases.counted == 3000 and 0 < aliases.read < 3000 and aliases.lost == 3000 - aliases.read
    async with Store.open(tmp_path / "saved") as store:
        assert store.count("aliases") == aliases.read
        first = store.scan("aliases", limit=1)[0]
        assert first[0] == "k000000" and first[1].data["pad"] == "x" * 400
    again = run_cli("store", "salvage", "--state-dir", str(state_dir), "--to", str(tmp_path / "saved"))
    assert again.returncode == 1 and again.stderr.startswith("error: ") and "exists already" in again.stderr


async def test_writes_are_refused_while_the_disk_is_full_and_resume_when_space_returns(state_dir: Path) -> None:
    async with Store.open(state_dir) as store:
        await store.commit([Put("aliases", "before", Generic({"a": 1}))])
        store.min_free = free_bytes(state_dir) + (1 << 40)  # as if the disk were full
        store._space_checked = -1e9
        with pytest.raises(StoreFull, match="is full"):
            await store.commit([Put("aliases", "during", Generic())])
        assert store.full
        with pytest.raises(StoreFull):
            await store.commit([Put("aliases", "during", Generic())])
        assert store.get("aliases", "before") is not None  # reads keep working
        store.min_free = 0  # space came back
        store._space_checked = -1e9
        assert not store.full
        await store.commit([Put("aliases", "after", Generic())])
        assert store.get("aliases", "after") is not None
        assert store.stats.refused_full == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
async def test_a_really_full_tmpfs_refuses_writes_then_resumes(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    if sh("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)) != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        async with Store.open(mount / "state", min_free=1 << 20) as store:
            filler = mount / "filler"
            fill_disk(filler)
            with pytest.raises(StoreFull):
                for n in range(100):
                    await store.commit([Put("aliases", f"k{n}", Generic({"pad": "x" * 100_000}))])
            filler.unlink()
            store._space_checked = -1e9
            await store.commit([Put("aliases", "after", Generic())])
            assert store.get("aliases", "after") is not None
    finally:
        sh("umount", "-l", str(mount))


async def test_a_store_left_open_by_a_crash_is_read_whole_before_it_starts(state_dir: Path) -> None:
    await fill(state_dir, 3000)
    lock = state_dir / "afactors.lock"
    lock.write_text("4242\n")  # what a killed process leaves behind
    async with Store.open(state_dir) as store:  # undamaged: starts
        assert store.count("aliases") == 3000
    zero_middle_page(state_dir / DATA)  # where LMDB aborts a reader
    lock.write_text("4242\n")
    with pytest.raises(StoreDamaged, match="was not closed cleanly and is damaged: the aliases records"):
        async with Store.open(state_dir):
            pass


async def test_verify_counts_records_that_read_but_no_longer_decode(state_dir: Path) -> None:
    await fill(state_dir, 200)
    env = lmdb.open(str(state_dir / DATA_DIR), max_dbs=32)
    with env.begin(write=True, db=env.open_db(b"aliases", create=False)) as txn:
        txn.put(b"k000008", b'{"v":1,"d":{"data":{bpad":"xx"}}}')  # a flipped bit in one record's JSON
    env.close()
    report = verify(state_dir)
    aliases = next(k for k in report.kinds if k.kind == "aliases")
    assert report.damaged and aliases.undecodable == 1 and aliases.lost == 0
