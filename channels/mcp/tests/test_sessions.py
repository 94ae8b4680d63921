"""Sessions in memory: resumable event logs, ownership, idle expiry and the session limit."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from afactors_mcp.jsonrpc import RpcError
from afactors_mcp.sessions import Call, EventLog, SessionTable


async def test_a_log_replays_after_a_position_then_follows_live_events() -> None:
    log = EventLog(2)
    log.append({"n": 1})
    log.append({"n": 2})
    got: list[bytes] = []

    async def reader() -> None:
        async for chunk in log.follow(1, keepalive=60):
            got.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b'event: message\nid: 2-2\ndata: {"n":2}\n\n']
        log.append({"n": 3})
        log.close()
    assert got[-1] == b'event: message\nid: 2-3\ndata: {"n":3}\n\n'


async def test_a_quiet_log_sends_keepalive_comments(autojump_clock: trio.testing.MockClock) -> None:
    log = EventLog(1)
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            async for chunk in log.follow(0, keepalive=10):
                got.append(chunk)

        nursery.start_soon(reader)
        await trio.sleep(25)
        log.close()
    assert got == [b": keepalive\n\n", b": keepalive\n\n"]


def table(**kwargs: object) -> SessionTable:
    settings = {"max_sessions": 10, "idle_timeout": 100.0, "keep_streams": 2, **kwargs}
    return SessionTable(**settings)  # type: ignore[arg-type]


async def test_a_session_belongs_to_its_tenant() -> None:
    sessions = table()
    session, evicted = sessions.open("t1", "2025-11-25")
    assert evicted == [] and sessions.get(session.id, "t1") is session
    with pytest.raises(RpcError) as caught:
        sessions.get(session.id, "t2")
    assert caught.value.status == 404
    assert sessions.remove(session.id) is session and len(sessions) == 0
    with pytest.raises(RpcError):
        sessions.get(session.id, "t1")


async def test_finished_streams_beyond_keep_streams_are_forgotten() -> None:
    session, _ = table().open("t", "2025-11-25")
    first = session.new_log()
    first.close()
    second = session.new_log()
    second.close()
    third = session.new_log()
    assert list(session.logs) == [2, 3] and third.stream == 3
    running = session.new_log()  # an open stream is never forgotten
    assert running.stream in session.logs and 3 in session.logs


async def test_idle_sessions_expire_but_busy_ones_stay(autojump_clock: trio.testing.MockClock) -> None:
    sessions = table()
    idle, _ = sessions.open("t", "2025-11-25")
    busy, _ = sessions.open("t", "2025-11-25")
    busy.calls[1] = Call()
    await trio.sleep(101)
    assert sessions.expire(trio.current_time()) == [idle]
    assert sessions.all() == [busy]


async def test_at_the_limit_the_least_recently_used_idle_session_makes_room() -> None:
    sessions = table(max_sessions=2)
    a, _ = sessions.open("t", "2025-11-25")
    b, _ = sessions.open("t", "2025-11-25")
    sessions.get(a.id, "t")  # a is now the most recently used
    c, evicted = sessions.open("t", "2025-11-25")
    assert evicted == [b] and {s.id for s in sessions.all()} == {a.id, c.id}
    a.listening = True
    c.calls["x"] = Call()
    with pytest.raises(RpcError) as caught:
        sessions.open("t", "2025-11-25")
    assert caught.value.status == 503


async def test_ending_a_session_closes_its_streams_and_cancels_its_calls() -> None:
    session, _ = table().open("t", "2025-11-25")
    log = session.new_log()
    session.calls[1] = call = Call()
    assert session.end() == [call]
    assert call.cancelled and log.done and session.ended.is_set()
