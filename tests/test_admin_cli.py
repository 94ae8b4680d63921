"""`python -m afactors inspect|show|dead-letters|purge|export|import|compact` on a stopped state directory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from afactors.actors import ActorSystem, ledger
from afactors.cli import main
from afactors.model import ConversationKey, Envelope, Message, Timer, TurnContext, Update
from afactors.store import DeadLetter, OutboxRecord, Put, Store, TimerRecord


class Echo:
    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        yield Update(delta="re:" + ctx.messages[-1].text)


POISON = Envelope(ConversationKey("t", "c"), (Message("user", "poison"),), turn_id="turn_poison")
PUSH = OutboxRecord(channel="telegram", address={"chat_id": 1}, payload={"turn_id": "x"}, attempts=8)
PENDING = [
    (ConversationKey("t", "c"), Timer(id="digest", due_at=2e9, cron="0 9 * * *", timezone="Europe/Berlin")),
    (ConversationKey("t", "c"), Timer(id="soon", due_at=1.9e9, payload={"text": "tea"})),
    (ConversationKey("t", "other"), Timer(id="x", due_at=2.1e9)),
]
FIRED = TimerRecord("t", "c", Timer(id="fired", due_at=5.0, fired=1), fired_at=5.0, turn_id="timer_abc")


async def populate(state: Path) -> None:
    async with Store.open(state, durability="unsafe") as store:
        async with ActorSystem.open(store, Echo()) as system:
            for key, text in [(ConversationKey("t", "c"), "one"), (ConversationKey("t", "c"), "two"),
                              (ConversationKey("t", "other"), "three")]:  # fmt: skip
                await (await system.submit(Envelope(key, (Message("user", text),), idempotency_key=text))).reply()
        await store.commit(
            [
                Put("dead_letters", "t/c/turn_poison", DeadLetter(POISON, "target failed twice", failed_at=1.0)),
                Put("dead_letters", "outbox/t/c/00000000000000000001", DeadLetter(None, "gave up", 2.0, PUSH)),
                *(op for key, timer in PENDING for op in ledger.timers_changed(key, {timer.id: timer}, {})),
                Put("timers", "t/c/fired", FIRED),
            ]
        )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    trio.run(populate, tmp_path / "state")
    return tmp_path / "state"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    status, out, err = run(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


def test_inspect_counts_kinds_and_lists_conversations(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = as_json(capsys, "inspect", "--state-dir", str(state))
    assert isinstance(report, dict)
    assert report["records"]["turns"] == 3 and report["records"]["dead_letters"] == 2
    assert sorted((c["conversation"], c["turns"], c["timers"]) for c in report["conversations"]) == [
        ("t/c", 2, 2), ("t/other", 1, 1),
    ]  # fmt: skip
    assert report["timers"] == {"pending": 3, "fired": 1, "next_due": 1.9e9}
    status, out, _ = run(capsys, "inspect", "--state-dir", str(state))
    assert status == 0 and "conversation" in out and "t/other" in out and "dead_letters  2" in out
    assert "timers: 3 pending (next due 2030-03-17 17:46:40), 1 fired" in out


def test_show_gives_history_and_pending_rows(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = as_json(capsys, "show", "t/c", "--state-dir", str(state))
    assert isinstance(report, dict)
    assert [(t["seq"], t["input"], t["output"]) for t in report["history"]] == [
        (1, "user: one", "assistant: re:one"), (2, "user: two", "assistant: re:two"),
    ]  # fmt: skip
    assert report["dead_letters"] == ["t/c/turn_poison"]
    assert [(t["id"], t["status"], t["turn_id"]) for t in report["timers"]] == [
        ("soon", "pending", None), ("digest", "pending", None), ("fired", "fired", "timer_abc"),
    ]  # fmt: skip
    status, out, _ = run(capsys, "show", "t/c", "--state-dir", str(state))
    assert status == 0 and "re:two" in out and "0 9 * * *" in out and "timer_abc" in out
    status, _, err = run(capsys, "show", "t/nope", "--state-dir", str(state))
    assert status == 1 and "no conversation 't/nope'" in err


def test_dead_letters_list_show_replay_purge(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = as_json(capsys, "dead-letters", "list", "--state-dir", str(state))
    assert isinstance(listed, list)
    assert [(d["key"], d["kind"]) for d in listed] == [
        ("outbox/t/c/00000000000000000001", "push"), ("t/c/turn_poison", "envelope"),
    ]  # fmt: skip
    shown = as_json(capsys, "dead-letters", "show", "t/c/turn_poison", "--state-dir", str(state))
    assert isinstance(shown, list) and shown[0]["record"]["error"] == "target failed twice"
    status, _, err = run(capsys, "dead-letters", "replay", "missing", "--state-dir", str(state))
    assert status == 1 and "no dead letter 'missing'" in err
    status, _, err = run(capsys, "dead-letters", "show", "--state-dir", str(state))
    assert status == 1 and "needs at least one key" in err
    keys = ["t/c/turn_poison", "outbox/t/c/00000000000000000001"]
    assert as_json(capsys, "dead-letters", "replay", *keys, "--state-dir", str(state))["replayed"] == 2  # type: ignore[index]

    async def rows() -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
        async with Store.open(state) as store:
            return store.scan("inbox"), store.scan("outbox")

    inbox, outbox = trio.run(rows)
    assert [row.envelope for _, row in inbox] == [POISON]
    assert [(k, row.attempts) for k, row in outbox] == [("t/c/00000000000000000001", 0)]
    assert as_json(capsys, "dead-letters", "purge", "--state-dir", str(state)) == {"purged": 0}


def test_timers_list_cancel_purge(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = as_json(capsys, "timers", "list", "--state-dir", str(state))
    assert isinstance(listed, list)
    assert [(t["conversation"], t["id"], t["status"]) for t in listed] == [
        ("t/c", "soon", "pending"), ("t/c", "digest", "pending"), ("t/other", "x", "pending"),
        ("t/c", "fired", "fired"),
    ]  # fmt: skip
    assert listed[1]["timezone"] == "Europe/Berlin" and listed[0]["payload"] == {"text": "tea"}
    status, out, _ = run(capsys, "timers", "list", "t/other", "--state-dir", str(state))
    assert status == 0 and "t/other" in out and "t/c" not in out
    assert as_json(capsys, "timers", "cancel", "t/c", "soon", "--state-dir", str(state)) == {"cancelled": 1}
    report = as_json(capsys, "inspect", "--state-dir", str(state))
    assert report["timers"]["pending"] == 2 and report["records"]["timer_due"] == 2  # type: ignore[index]
    assert as_json(capsys, "timers", "purge", "t/c", "--state-dir", str(state)) == {"purged": 2}
    assert as_json(capsys, "timers", "list", "t/c", "--state-dir", str(state)) == []
    assert as_json(capsys, "timers", "purge", "--state-dir", str(state)) == {"purged": 1}
    assert as_json(capsys, "inspect", "--state-dir", str(state))["records"]["timer_due"] == 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cancel", "t/c", "nope"], "t/c has no pending timer 'nope' (see `timers list`)"),
        (["cancel", "t/c", "fired"], "t/c has no pending timer 'fired'"),
        (["cancel", "t/c", "soon", "nope"], "no pending timer 'nope'"),  # all or nothing
        (["cancel", "t/c"], "needs a conversation and at least one timer id"),
        (["cancel"], "needs a conversation and at least one timer id"),
        (["list", "no-slash"], "conversation 'no-slash' must be TENANT/CONVERSATION"),
        (["cancel", "/c", "soon"], "must be TENANT/CONVERSATION"),
        (["list", "t/nope"], "no conversation 't/nope'"),
        (["purge", "t/c", "soon"], "timers purge takes at most one conversation"),
    ],
)
def test_timers_bad_input_is_a_clear_error(
    state: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = run(capsys, "timers", *argv, "--state-dir", str(state))
    assert status == 1 and message in err
    assert len(as_json(capsys, "timers", "list", "--state-dir", str(state))) == 4  # type: ignore[arg-type]


def test_purge_forgets_one_conversation_in_every_kind(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    removed = as_json(capsys, "purge", "t/c", "--state-dir", str(state))
    assert removed == {"snapshots": 1, "turns": 2, "inbox": 0, "outbox": 0, "dedup": 2, "dead_letters": 2,
                       "checkpoints": 0, "responses": 2, "timers": 3}  # fmt: skip
    assert run(capsys, "show", "t/c", "--state-dir", str(state))[0] == 1
    assert as_json(capsys, "show", "t/other", "--state-dir", str(state))["turns_done"] == 1  # type: ignore[index]
    assert as_json(capsys, "inspect", "--state-dir", str(state))["records"]["timer_due"] == 1  # type: ignore[index]
    status, _, err = run(capsys, "purge", "no-slash", "--state-dir", str(state))
    assert status == 1 and "conversation 'no-slash' must be TENANT/CONVERSATION" in err


def test_export_import_round_trips(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert as_json(capsys, "export", str(first), "--state-dir", str(state))["exported"] == 20  # type: ignore[index]
    header = json.loads(first.read_text().splitlines()[0])
    assert header["format"] == "afactors-export" and header["version"] == 1
    imported = as_json(capsys, "import", str(first), "--state-dir", str(tmp_path / "copy"))
    assert imported == {"snapshots": 2, "turns": 3, "dedup": 3, "dead_letters": 2, "responses": 3, "timers": 4,
                        "timer_due": 3}  # fmt: skip
    as_json(capsys, "export", str(second), "--state-dir", str(tmp_path / "copy"))
    assert first.read_text().splitlines()[1:] == second.read_text().splitlines()[1:]
    assert as_json(capsys, "timers", "list", "--state-dir", str(tmp_path / "copy")) == as_json(
        capsys, "timers", "list", "--state-dir", str(state)
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "line 1: the export is empty"),
        ("nope", "line 1: not JSON"),
        ('{"format": "other"}', "line 1: not an afactors export"),
        ('{"format": "afactors-export", "version": 9}', "export version 9; this afactors reads 1"),
        ('{"format": "afactors-export", "version": 1}\n[1]', "line 2: expected an object with kind, key, v and d"),
        ('{"format": "afactors-export", "version": 1}\n{"kind": "x", "key": "k", "v": 1, "d": {}}', "unknown kind 'x'"),
        (
            '{"format": "afactors-export", "version": 1}\n{"kind": "dedup", "key": "k", "v": 7, "d": {}}',
            "dedup schema version 7; this afactors reads 1",
        ),
        (
            '{"format": "afactors-export", "version": 1}\n{"kind": "dedup", "key": "k", "v": 1, "d": {}}',
            "line 2: not a valid dedup record",
        ),
    ],
)
def test_bad_exports_are_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(content)
    status, _, err = run(capsys, "import", str(source), "--state-dir", str(tmp_path / "s"))
    assert status == 1 and message in err


def test_compact_writes_a_smaller_working_copy(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = as_json(capsys, "compact", str(tmp_path / "compact"), "--state-dir", str(state))
    assert isinstance(result, dict) and 0 < result["bytes_after"] <= result["bytes_before"]
    assert as_json(capsys, "inspect", "--state-dir", str(tmp_path / "compact"))["records"]["turns"] == 3  # type: ignore[index]
    status, _, err = run(capsys, "compact", str(tmp_path / "compact"), "--state-dir", str(state))
    assert status == 1 and "exists" in err


def test_missing_or_busy_state_dirs_are_clear_errors(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "inspect", "--state-dir", str(tmp_path / "none"))
    assert status == 1 and "no afactors state in" in err
    with subprocess.Popen(
        [sys.executable, "-m", "afactors", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as host:  # fmt: skip
        try:
            assert host.stdout is not None and host.stdout.readline().startswith("afactors")
            status, _, err = run(capsys, "inspect", "--state-dir", str(state))
        finally:
            host.terminate()
            host.wait(timeout=15)
    assert status == 1 and "already in use by process" in err and "admin API" in err
