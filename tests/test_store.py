"""The store in one process: commits, reads, group commit, map growth, long keys, schema upgrades, quarantine and
closing. Every test that is not about LMDB itself runs on both backends: real LMDB environments in temp dirs, and a
fresh schema of a throwaway PostgreSQL server on loopback."""

from __future__ import annotations

import logging
from pathlib import Path

import lmdb
import orjson
import psycopg
import pytest
import trio
import trio.testing

from afactors import admin
from afactors.model import ConversationKey, Envelope, ErrorInfo, Message, UsagePart
from afactors.store import (
    DATA_DIR,
    HEAD_BYTES,
    KINDS,
    MAX_KEY_BYTES,
    DeadLetter,
    DedupRecord,
    Delete,
    Durability,
    Expect,
    Generic,
    InboxRecord,
    OutboxRecord,
    Put,
    Quarantined,
    ResponseRecord,
    Snapshot,
    Store,
    StoreClosed,
    StoreError,
    StoreInUse,
    TurnRecord,
)
from afactors.store._codec import encode_key
from afactors.store._group_commit import SPLIT_AT, SPLIT_COMMIT_S, batch_limit
from afactors.store._pg_store import PgStore
from afactors.store.pg_server import PgServer


def _raw_put(location: str | Path, kind: str, key: bytes, value: bytes) -> None:
    """Write bytes straight into a kind, with py-lmdb or SQL (the store must not be open)."""
    if isinstance(location, str):
        with psycopg.connect(location) as conn:
            conn.execute("INSERT INTO afactors_records VALUES (%s, %s, %s)", (kind, key, value))
        return
    env = lmdb.open(str(location / DATA_DIR), max_dbs=len(KINDS) + 2)
    try:
        with env.begin(write=True) as txn:
            txn.put(key, value, db=env.open_db(kind.encode(), txn=txn))
    finally:
        env.close()


def _raw_get(location: str | Path, kind: str, key: bytes) -> bytes:
    """The stored bytes of a record, read with py-lmdb or SQL (the store must not be open)."""
    if isinstance(location, str):
        with psycopg.connect(location) as conn:
            row = conn.execute("SELECT value FROM afactors_records WHERE kind = %s AND key = %s", (kind, key))
            return bytes(row.fetchone()[0])  # type: ignore[index]
    env = lmdb.open(str(location / DATA_DIR), max_dbs=len(KINDS) + 2, readonly=True)
    try:
        with env.begin(db=env.open_db(kind.encode(), create=False)) as txn:
            return bytes(txn.get(key))
    finally:
        env.close()


async def _make_kinds(location: str | Path) -> None:
    async with Store.open(location, durability="unsafe"):
        pass


async def test_commit_get_delete_count(store_location: str | Path) -> None:
    async with Store.open(store_location, durability="unsafe") as store:
        assert store.get("snapshots", "t/c1") is None
        await store.commit(
            [
                Put("snapshots", "t/c1", Snapshot(seq=1, head="turn-1")),
                Put("dedup", "t/m1", DedupRecord("turn-1", 1)),
            ]
        )
        assert store.get("snapshots", "t/c1") == Snapshot(seq=1, head="turn-1")
        assert store.count("snapshots") == 1
        await store.commit([Delete("dedup", "t/m1"), Delete("dedup", "never-written")])
        assert store.get("dedup", "t/m1") is None
        assert store.count("dedup") == 0
    async with Store.open(store_location) as store:
        assert store.get("snapshots", "t/c1") == Snapshot(seq=1, head="turn-1")


def _one_of_each_record() -> dict[str, object]:
    envelope = Envelope(ConversationKey("t", "c"), input=(Message("user", "hi"),), idempotency_key="m1")
    return {
        "snapshots": Snapshot(seq=3, head="turn-3", state={"x": [1, 2]}, updated_at=1.5),
        "turns": TurnRecord(3, "turn-3", (Message("user", "q"),), (Message("assistant", "a"),), usage=UsagePart(1, 2)),
        "responses": ResponseRecord("resp-1", "t", "c", "failed", error=ErrorInfo("boom", "it broke"), data={"k": 1}),
        "inbox": InboxRecord(envelope, received_at=2.0),
        "dedup": DedupRecord("turn-3", 3),
        "outbox": OutboxRecord("telegram", {"chat_id": 1}, {"text": "hi"}, attempts=2, due_at=9.0),
        "dead_letters": DeadLetter(envelope, "ValueError: poison", delivery=OutboxRecord("telegram", {}, {"t": 1})),
        "checkpoints": Generic({"step": 1}),
        "quarantine": Quarantined("turns", "t/c/1", b"\x00\xffgarbage", "not JSON"),
    }


async def test_every_record_class_roundtrips_through_the_store(store_location: str | Path) -> None:
    records = _one_of_each_record()
    async with Store.open(store_location, durability="unsafe") as store:
        await store.commit([Put(kind, "k", record) for kind, record in records.items()])
    async with Store.open(store_location) as store:
        for kind, record in records.items():
            assert store.get(kind, "k") == record


async def test_bad_ops_fail_the_caller_before_anything_is_queued(store_location: str | Path) -> None:
    async with Store.open(store_location, durability="unsafe") as store:
        with pytest.raises(KeyError, match="unknown record kind 'nope'"):
            await store.commit([Put("nope", "k", Generic())])
        with pytest.raises(TypeError, match="kind 'snapshots' holds Snapshot records, not Generic"):
            await store.commit([Put("snapshots", "k", Generic())])
        with pytest.raises(ValueError, match="must not be empty"):
            await store.commit([Delete("dedup", "")])
        with pytest.raises(TypeError, match="takes Put and Delete operations, not tuple"):
            await store.commit([("snapshots", "k", Snapshot())])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="cannot encode the checkpoints record 'k'"):
            await store.commit([Put("checkpoints", "ok", Generic()), Put("checkpoints", "k", Generic({"s": object()}))])
        with pytest.raises(KeyError, match="unknown record kind"):
            store.get("nope", "k")
        assert store.count("checkpoints") == 0  # the good op of the rejected commit was not written
        assert store.stats.transactions == 0


async def test_unencodable_commits_fail_only_their_callers(store_location: str | Path) -> None:
    outcomes: dict[int, str] = {}

    async def commit(i: int) -> None:
        state = {"bad": object()} if i % 10 == 0 else {"i": i}
        try:
            await store.commit([Put("snapshots", f"c{i}", Snapshot(seq=i, state=state))])
            outcomes[i] = "ok"
        except TypeError:
            outcomes[i] = "rejected"

    async with Store.open(store_location) as store:
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(commit, i)
        assert {i for i, o in outcomes.items() if o == "rejected"} == set(range(0, 50, 10))
        assert store.count("snapshots") == 45
        assert store.stats.failed_commits == 0  # rejected in the caller; the writer never saw them


async def test_200_concurrent_committers_all_commit_in_grouped_transactions(store_location: str | Path) -> None:
    async def committer(i: int) -> None:
        for n in range(3):
            await store.commit(
                [
                    Put("snapshots", f"c{i}", Snapshot(seq=n)),
                    Put("dedup", f"c{i}/{n}", DedupRecord("t", n)),
                ]
            )

    async with Store.open(store_location) as store:
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(committer, i)
        assert store.stats.commits == 600
        assert store.stats.transactions < 600 // 10
        assert store.stats.largest_batch > 10
    async with Store.open(store_location) as store:
        assert store.count("dedup") == 600
        assert all(store.get("snapshots", f"c{i}") == Snapshot(seq=2) for i in range(200))


@pytest.mark.parametrize("durability", ["durable", "fast"])
async def test_tiny_map_grows_under_load_without_losing_a_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, durability: Durability
) -> None:
    payload = "x" * 2000

    async def committer(i: int) -> None:
        for n in range(20):
            await store.commit([Put("checkpoints", f"{i:02}/{n:02}", Generic({"pad": payload, "n": n}))])
            assert store.get("checkpoints", f"{i:02}/{n:02}") == Generic({"pad": payload, "n": n})

    with caplog.at_level(logging.WARNING, logger="afactors.store"):
        async with Store.open(tmp_path, map_size=32 << 10, durability=durability) as store:
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(committer, i)
            grows, size = store.stats.map_grows, store.stats.map_size
            assert store.stats.failed_commits == 0
    assert grows >= 5
    assert size >= 2 << 20
    assert sum("store map full: grew the map" in r.getMessage() for r in caplog.records) == grows
    async with Store.open(tmp_path, map_size=32 << 10) as store:
        assert store.count("checkpoints") == 1000
        assert [k for k, _ in store.scan("checkpoints", "07/")] == [f"07/{n:02}" for n in range(20)]
        await store.commit([Put("checkpoints", "more", Generic({"pad": payload * 100}))])  # grows again
        assert store.get("checkpoints", "more") == Generic({"pad": payload * 100})
        assert 0 < store.map_usage() <= 1


async def test_scan_prefix_after_limit_reverse(store_location: str | Path) -> None:
    keys = ["a", "b/1", "b/2", "b/3", "b/30", "b0", "c/1"]
    async with Store.open(store_location, durability="unsafe") as store:
        await store.commit([Put("dedup", k, DedupRecord(k, i)) for i, k in enumerate(keys)])

        def scan(prefix: str = "", **kw: object) -> list[str]:
            return [k for k, _ in store.scan("dedup", prefix, **kw)]  # type: ignore[arg-type]

        assert scan() == keys
        assert scan(reverse=True) == keys[::-1]
        assert scan("b/") == ["b/1", "b/2", "b/3", "b/30"]
        assert scan("b/", reverse=True) == ["b/30", "b/3", "b/2", "b/1"]
        assert scan("b/", after="b/2") == ["b/3", "b/30"]
        assert scan("b/", after="b/3", reverse=True) == ["b/2", "b/1"]
        assert scan("b/", after="a") == ["b/1", "b/2", "b/3", "b/30"]  # `after` below the prefix range
        assert scan("c/", after="b") == ["c/1"]
        assert scan("b/", after="z", reverse=True) == ["b/30", "b/3", "b/2", "b/1"]
        assert scan("b/", after="b/30") == []
        assert scan("b/", limit=2) == ["b/1", "b/2"]
        assert scan("b/", limit=2, reverse=True) == ["b/30", "b/3"]
        assert scan("b/", limit=0) == []
        assert scan("zzz") == []
        assert store.scan("dedup", "c/") == [("c/1", DedupRecord("c/1", 6))]


async def test_long_keys_are_hashed_and_come_back_whole(store_location: str | Path) -> None:
    tenant = "t" * 300
    head = f"{tenant}/conversation-"
    long_keys = [head + "x" * 200 + f"/{n}" for n in range(5)]  # share far more than HEAD_BYTES
    short_keys = [f"{tenant}/a", f"{tenant}/z"]
    unicode_key = "ü" * 300  # 600 bytes of UTF-8
    async with Store.open(store_location, durability="unsafe") as store:
        await store.commit([Put("dedup", k, DedupRecord(k, 0)) for k in [*long_keys, *short_keys, unicode_key]])
        for key in [*long_keys, unicode_key]:
            assert len(key.encode()) > MAX_KEY_BYTES
            assert store.get("dedup", key) == DedupRecord(key, 0)
        assert store.get("dedup", long_keys[0] + "-other") is None

        assert sorted(k for k, _ in store.scan("dedup", tenant)) == sorted([*long_keys, *short_keys])
        assert sorted(k for k, _ in store.scan("dedup", head)) == sorted(long_keys)
        assert len(head.encode()) < HEAD_BYTES < len(long_keys[0].encode()) - 2
        assert [k for k, _ in store.scan("dedup", long_keys[3])] == [long_keys[3]]  # prefix longer than the head
        assert [k for k, r in store.scan("dedup", "ü")] == [unicode_key]

        for reverse in (False, True):  # paging one key at a time visits every key exactly once
            seen: list[str] = []
            after = None
            while page := store.scan("dedup", tenant, after=after, limit=1, reverse=reverse):
                seen.append(after := page[0][0])
            assert sorted(seen) == sorted([*long_keys, *short_keys])

        await store.commit([Delete("dedup", long_keys[1])])
        assert store.get("dedup", long_keys[1]) is None
        assert store.count("dedup") == 7


async def test_schema_upgrade_from_a_hand_made_v0_record(store_location: str | Path) -> None:
    await _make_kinds(store_location)
    v0 = {"v": 0, "d": {"turns": 7, "head": "turn-7", "updated_at": 12.5}}
    _raw_put(store_location, "snapshots", b"t/c1", orjson.dumps(v0))
    async with Store.open(store_location, durability="unsafe") as store:
        upgraded = Snapshot(seq=7, head="turn-7", state={}, updated_at=12.5)
        assert store.get("snapshots", "t/c1") == upgraded
        assert store.scan("snapshots") == [("t/c1", upgraded)]
        await store.commit([Put("snapshots", "t/c1", upgraded)])  # rewritten at the current version
    assert orjson.loads(_raw_get(store_location, "snapshots", b"t/c1"))["v"] == Snapshot.SCHEMA == 2


GARBAGE = {
    b"t/not-json": b"\x00\x01 not json",
    b"t/newer": orjson.dumps({"v": 99, "d": {}}),
    b"t/wrong-shape": orjson.dumps({"v": 1, "d": {"seq": "many"}}),
    b"t/no-version": orjson.dumps({"seq": 1}),
}


async def test_undecodable_records_read_as_none_are_logged_and_quarantined(
    store_location: str | Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _make_kinds(store_location)
    for key, value in GARBAGE.items():
        _raw_put(store_location, "snapshots", key, value)
    _raw_put(store_location, "snapshots", b"t/good", orjson.dumps({"v": 1, "d": {"seq": 1}}))
    with caplog.at_level(logging.ERROR, logger="afactors.store"):
        async with Store.open(store_location) as store:
            assert store.get("snapshots", "t/not-json") is None
            assert store.scan("snapshots") == [("t/good", Snapshot(seq=1))]  # the other three set aside here
            await store.commit([])  # a barrier: the quarantine moves queued before it are written
            assert store.scan("snapshots") == [("t/good", Snapshot(seq=1))]
            assert store.count("snapshots") == 1
            moved = {r.key: r for _, r in store.scan("quarantine", "snapshots/")}
    assert set(moved) == {k.decode() for k in GARBAGE}
    for key, value in GARBAGE.items():
        record = moved[key.decode()]
        assert (record.kind, record.raw) == ("snapshots", value)
    assert "newer than this code" in moved["t/newer"].reason
    assert "invalid value for type, expected int @ $.seq" in moved["t/wrong-shape"].reason
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("quarantining undecodable snapshots record 't/not-json'" in m for m in logged)
    assert len(logged) == len(GARBAGE)


async def test_a_hashed_key_whose_value_names_another_key_is_quarantined(store_location: str | Path) -> None:
    long_key = "k" * 500
    await _make_kinds(store_location)
    bad = {"v": 1, "d": {"turn_id": "t", "seq": 1}, "k": "j" * 500}
    _raw_put(store_location, "dedup", encode_key(long_key), orjson.dumps(bad))
    async with Store.open(store_location, durability="unsafe") as store:
        assert store.get("dedup", long_key) is None
        await store.commit([])
        [(_, record)] = store.scan("quarantine")
        assert "does not hash to the stored key" in record.reason
        assert store.count("dedup") == 0


async def test_quarantine_never_removes_a_record_a_commit_replaced(store_location: str | Path) -> None:
    # A reader finds garbage and queues its move while a writer replaces the garbage; trio runs the two in
    # either order, so over a dozen rounds both orders occur. The valid record must survive every time.
    rounds = 12
    await _make_kinds(store_location)
    for i in range(rounds):
        _raw_put(store_location, "snapshots", f"k{i}".encode(), b"garbage")

    async def read(key: str) -> None:
        store.get("snapshots", key)

    async with Store.open(store_location, durability="unsafe") as store:
        for i in range(rounds):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.commit, [Put("snapshots", f"k{i}", Snapshot(seq=i))])
                nursery.start_soon(read, f"k{i}")
        await store.commit([])
        assert [store.get("snapshots", f"k{i}") for i in range(rounds)] == [Snapshot(seq=i) for i in range(rounds)]
        assert store.count("quarantine") <= rounds


async def test_close_completes_queued_commits_and_refuses_new_ones(store_location: str | Path) -> None:
    done: list[int] = []

    async def commit(i: int) -> None:
        await store.commit([Put("dedup", f"m{i:03}", DedupRecord("t", i))])
        done.append(i)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery, Store.open(store_location, max_batch=10) as store:
            for i in range(100):
                nursery.start_soon(commit, i)
            await trio.testing.wait_all_tasks_blocked()
            assert store.queued > 0
    assert store.stats.commits == 100  # closing waited for every queued commit
    assert sorted(done) == list(range(100))
    with pytest.raises(StoreClosed):
        await store.commit([Put("dedup", "late", DedupRecord("t", 0))])
    with pytest.raises(StoreClosed):
        store.get("dedup", "m000")
    async with Store.open(store_location) as store:
        assert store.count("dedup") == 100


async def test_commits_made_while_one_is_written_are_written_after_it_in_order(
    store_location: str | Path,
) -> None:
    # The first commit is being written (`durable`: in the writer's thread, for ms) while the others are made: they
    # queue behind it. Each expects the value the one made before it wrote: all hold only if the commits were
    # written in the order they were made.
    held: dict[int, bool] = {}

    async def commit(i: int) -> None:
        before = Expect("dedup", "same", DedupRecord("t", i - 1) if i else None)
        held[i] = await store.commit([Put("dedup", "same", DedupRecord("t", i))], expect=[before])

    async with Store.open(store_location, durability="durable") as store:
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(commit, i)
                await trio.testing.wait_all_tasks_blocked()  # it is being written, or queued
        assert held == dict.fromkeys(range(6), True)
        assert store.stats.transactions < 6  # some were queued while another was written (`durable` takes ms)
        assert store.get("dedup", "same") == DedupRecord("t", 5)


@pytest.mark.parametrize("durability", ["fast", "durable"])
async def test_commits_made_together_share_a_transaction_and_one_alone_is_written_alone(
    store_location: str | Path, durability: str
) -> None:
    # Tasks committing in the same scheduling round share one transaction, even where a lone commit is written by
    # its own task (LMDB `fast`): a store that wrote each of them alone would spend a transaction on every one.
    async def commit(i: int) -> None:
        await store.commit([Put("dedup", f"k{i}", DedupRecord("t", i))])

    async with Store.open(store_location, durability=durability) as store:
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(commit, i)
        grouped = store.stats.transactions
        assert store.stats.commits == 50 and grouped <= 3
        for i in range(50, 53):  # then one at a time: each its own transaction
            await commit(i)
        assert store.stats.transactions == grouped + 3 and store.count("dedup") == 53


@pytest.mark.parametrize(
    ("queued", "max_batch", "last_write", "split", "limit"),
    [
        (SPLIT_AT - 1, 4096, 0.0, True, 4096),  # a short queue is written whole
        (SPLIT_AT, 4096, 0.0, True, SPLIT_AT // 2),
        (301, 4096, 0.0, True, 150),
        (300, 100, 0.0, True, 100),  # max_batch still bounds it
        (300, 4096, 150 * SPLIT_COMMIT_S * 0.99, True, 150),
        (300, 4096, 150 * SPLIT_COMMIT_S, True, 4096),  # a flush as slow as the other half's work: one transaction
        (300, 4096, 0.0, False, 4096),  # the flush holds up the trio thread (fast, PostgreSQL): never split
    ],
)
def test_a_long_queue_is_split_in_two_only_where_the_flush_runs_beside_and_is_quick(
    queued: int, max_batch: int, last_write: float, split: bool, limit: int
) -> None:
    assert batch_limit(queued, max_batch, last_write, split) == limit


@pytest.mark.parametrize(("durability", "largest"), [("durable", 150), ("fast", 299)])
async def test_lmdb_durable_writes_a_long_queue_as_two_transactions_so_one_half_works_while_the_other_flushes(
    tmp_path: Path, durability: Durability, largest: int
) -> None:
    # 300 tasks commit in one scheduling round. `durable` flushes in a thread: the first transaction takes half the
    # queue (the store's first flush counts as quick). `fast` writes on the trio thread: the first commit alone, by
    # its own task (nothing was queued yet), and the 299 queued behind it in one transaction.
    async def commit(i: int) -> None:
        await store.commit([Put("dedup", f"k{i:03d}", DedupRecord("t", i))])

    async with Store.open(tmp_path / "s", durability=durability) as store:
        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(commit, i)
        assert (store.stats.commits, store.stats.largest_batch) == (300, largest)
    async with Store.open(tmp_path / "s") as store:
        assert [record.seq for _, record in store.scan("dedup")] == list(range(300))


async def test_a_caller_cancelled_while_its_commit_is_queued_still_gets_the_outcome(store_location: str | Path) -> None:
    returned = False

    async def cancel_when_blocked() -> None:
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()

    async with Store.open(store_location) as store:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_when_blocked)
                await store.commit([Put("dedup", "m", DedupRecord("t", 1))])
                returned = True
        assert returned
        assert store.get("dedup", "m") == DedupRecord("t", 1)


@pytest.mark.parametrize(
    ("durability", "sync", "metasync"), [("durable", True, True), ("fast", False, False), ("unsafe", False, False)]
)
async def test_every_durability_setting_persists_across_reopen(
    tmp_path: Path, durability: str, sync: bool, metasync: bool
) -> None:
    async with Store.open(tmp_path, durability=durability) as store:  # type: ignore[arg-type]
        flags = store._env.flags()  # what LMDB flushes on commit; a crash of the OS is not testable here
        assert (flags["sync"], flags["metasync"], flags["writemap"], flags["lock"]) == (sync, metasync, False, True)
        await store.commit([Put("dedup", "m", DedupRecord("t", 1))])
    async with Store.open(tmp_path) as store:
        assert store.get("dedup", "m") == DedupRecord("t", 1)


@pytest.mark.parametrize(("durability", "synchronous_commit"), [("durable", "on"), ("fast", "off"), ("unsafe", "off")])
async def test_every_durability_setting_on_postgresql_sets_synchronous_commit(
    pg_server: PgServer, durability: str, synchronous_commit: str
) -> None:
    url = pg_server.new_store_url()
    async with PgStore.open(url, durability=durability) as store:  # type: ignore[arg-type]
        await store.commit([Put("dedup", "m", DedupRecord("t", 1))])
        # the writer connection's setting (the writer is idle now: its commit returned)
        [[writer_setting]] = store._writer_conn.execute("SHOW synchronous_commit").fetchall()
        store._writer_conn.rollback()
        assert writer_setting == synchronous_commit
    async with Store.open(url) as store:
        assert store.get("dedup", "m") == DedupRecord("t", 1)


async def test_bad_open_arguments_are_clear_errors(store_location: str | Path) -> None:
    with pytest.raises(ValueError, match="durability must be one of durable, fast, unsafe, not 'safe'"):
        async with Store.open(store_location, durability="safe"):
            pass
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        async with Store.open(store_location, max_batch=0):
            pass


async def test_a_map_size_that_is_not_positive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="map_size must be positive"):
        async with Store.open(tmp_path, map_size=0):
            pass


async def test_a_postgresql_store_that_cannot_be_reached_is_a_clear_error(pg_server: PgServer) -> None:
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL store"):
        async with Store.open(f"postgresql://afactors@127.0.0.1:{pg_server.port}/no_such_database"):
            pass


async def test_a_state_directory_that_cannot_be_used_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match=f"cannot create state directory {tmp_path / 'file'}"):
        async with Store.open(tmp_path / "file"):
            pass
    (tmp_path / "broken" / DATA_DIR).mkdir(parents=True)
    (tmp_path / "broken" / DATA_DIR / "data.mdb").write_bytes(b"\x00" * 100 + b"not an LMDB file" * 1000)
    for _ in range(2):  # the second time shows the failed open released the lock (else: StateDirLocked)
        with pytest.raises(StoreError, match=f"cannot open the LMDB environment in {tmp_path / 'broken'}"):
            async with Store.open(tmp_path / "broken"):
                pass


async def test_an_export_of_one_backend_imports_into_the_other(tmp_path: Path, pg_server: PgServer) -> None:
    records = _one_of_each_record()
    url = pg_server.new_store_url()
    long_key = "t/" + "x" * 500  # stored under a hash in both
    async with Store.open(tmp_path) as lmdb_store:
        await lmdb_store.commit([Put(kind, k, r) for kind, r in records.items() for k in ("k", long_key)])
        exported = list(admin.export_lines(lmdb_store))
    async with Store.open(url) as pg_store:
        assert await admin.import_lines(pg_store, exported) == dict.fromkeys(records, 2)
        assert list(admin.export_lines(pg_store))[1:] == exported[1:]  # the same records, in the same order
        for kind, record in records.items():
            assert pg_store.get(kind, long_key) == record


async def test_postgresql_connections_lost_are_replaced_and_the_lock_taken_again(pg_server: PgServer) -> None:
    url = pg_server.new_store_url()

    def terminate(pid: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    async with PgStore.open(url) as store:
        await store.commit([Put("dedup", "before", DedupRecord("t", 1))])
        terminate(store._writer_conn.info.backend_pid)
        # its connection died before the transaction was sent: it cannot have committed, so it runs on a new one
        await store.commit([Put("dedup", "after", DedupRecord("t", 3))])
        terminate(store._reader.info.backend_pid)
        assert [k for k, _ in store.scan("dedup")] == ["after", "before"]  # the reader reconnected too
        with pytest.raises(StoreInUse, match="already in use by process"):  # the new writer holds the lock
            async with Store.open(url):
                pass


async def test_conditional_commits_in_one_group_see_each_others_writes(store_location: str | Path) -> None:
    # Compare-and-set from 20 tasks at once: their commits share transactions, and in each only the first
    # that expects the current value may write; the rest see its write and are refused (the way a fencing
    # epoch will refuse a stale owner). No increment is lost and none is applied twice. (`durable`: while one
    # commit's transaction is in its thread the others queue, so they are grouped; with `unsafe` every commit is
    # written at once, and the tasks take turns.)
    refused = 0

    async def increment(times: int) -> None:
        nonlocal refused
        for _ in range(times):
            while True:
                current = store.get("aliases", "counter")
                after = Generic({"n": (current.data["n"] if current else 0) + 1})
                unchanged = Expect("aliases", "counter", current)
                if await store.commit([Put("aliases", "counter", after)], expect=[unchanged]):
                    break
                refused += 1

    async with Store.open(store_location, durability="durable") as store:
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(increment, 5)
        assert store.get("aliases", "counter") == Generic({"n": 100})
        assert refused > 0 and store.stats.largest_batch > 1
        assert not await store.commit([Delete("aliases", "counter")], expect=[Expect("aliases", "counter", None)])
        assert store.get("aliases", "counter") == Generic({"n": 100})  # the refused commit wrote nothing
