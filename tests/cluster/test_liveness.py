"""Which nodes are live (`Liveness`), from reads of their heartbeat counters on the reader's own clock: pure, fed
the records a read finds and the time it found them."""

from __future__ import annotations

from afactors.cluster._liveness import BEATS, DETECTION, FORGET_AFTER, READS, Liveness, detection_window
from afactors.store import NodeRecord

LEASE = 5.0


def record(beat: int, lease: float = LEASE, node_id: str = "b") -> NodeRecord:
    return NodeRecord(node_id, "http://127.0.0.1:9", beat, lease, 0.0, 0.0)


def test_a_node_is_dead_once_a_read_finds_its_beat_unchanged_for_half_its_lease() -> None:
    liveness = Liveness()
    liveness.observe({"b": record(7)}, now=100.0)
    liveness.observe({"b": record(7)}, now=100.0 + LEASE / 2 - 0.01)
    assert liveness.live("b")
    liveness.observe({"b": record(7)}, now=100.0 + LEASE / 2)
    assert not liveness.live("b")
    liveness.observe({"b": record(8)}, now=200.0)  # it beats again (resumed): live at the read that sees it
    assert liveness.live("b")


def test_a_node_is_judged_at_reads_only_so_a_reader_that_was_paused_holds_nobody_dead() -> None:
    liveness = Liveness()
    liveness.observe({"b": record(7)}, now=100.0)
    assert liveness.live("b")  # however long no read comes (this process was stopped), as last read: live
    liveness.observe({"b": record(30)}, now=160.0)  # the first read after 60 s finds it moved
    assert liveness.live("b")


def test_the_window_is_the_watched_nodes_own_lease_and_starts_when_this_process_first_reads_it() -> None:
    liveness = Liveness()
    liveness.observe({"b": record(7, lease=20.0), "c": record(3)}, now=100.0)  # first seen: a whole window from now
    liveness.observe({"b": record(7, lease=20.0), "c": record(3)}, now=103.0)
    assert liveness.live("b") and not liveness.live("c")  # 3 s still: within b's 10 s window, past c's 2.5 s
    assert detection_window(20.0) == 10.0


def test_a_deleted_record_is_no_node_at_once_and_a_long_silent_one_is_forgettable() -> None:
    liveness = Liveness()
    liveness.observe({"b": record(7), "c": record(1, node_id="c")}, now=100.0)
    liveness.observe({"c": record(1, node_id="c")}, now=100.5)  # b shut down cleanly: its record is gone
    assert liveness.known() == ["c"] and not liveness.live("b") and liveness.record("b") is None
    liveness.observe({"c": record(1, node_id="c")}, now=100.0 + FORGET_AFTER * LEASE - 0.1)
    assert liveness.forgettable() == {}
    liveness.observe({"c": record(1, node_id="c")}, now=100.0 + FORGET_AFTER * LEASE)
    assert liveness.forgettable() == {"c": record(1, node_id="c")}
    liveness.forget("c")
    assert liveness.known() == []


def held_dead_at(stop: float, *, beat_offset: float, read_offset: float, stall: float = 0.0) -> float:
    """When a reader reading every lease/READS (from `read_offset`) first holds dead a node that beats every
    lease/BEATS (from `beat_offset`) until `stop`, its store stalling every commit begun in [20, 20 + `stall`) until
    the stall's end."""
    beat_every, read_every = LEASE / BEATS, LEASE / READS
    began = [beat_offset + n * beat_every for n in range(int(stop / beat_every) + 2)]
    committed = [20.0 + stall if 20.0 <= at < 20.0 + stall else at for at in began if at < stop]
    liveness = Liveness()
    now = read_offset
    while liveness.live("b") or now == read_offset:
        liveness.observe({"b": record(sum(at <= now for at in committed))}, now)
        now += read_every
    return now - read_every


def test_a_stopped_node_is_held_dead_within_the_detection_window_plus_a_read_and_a_beat() -> None:
    window, beat_every, read_every = LEASE * DETECTION, LEASE / BEATS, LEASE / READS
    delays = [
        held_dead_at(stop, beat_offset=beat / 5 * beat_every, read_offset=read / 3 * read_every) - stop
        for stop in (30.0 + n / 7 for n in range(7))
        for beat in range(5)
        for read in range(3)
    ]
    assert min(delays) >= window - beat_every - read_every
    assert max(delays) <= window + 2 * read_every + 1e-9  # well inside the lease: the takeover starts then
    assert max(delays) < LEASE * 0.7


def test_a_node_whose_store_stalls_less_than_the_slack_is_never_held_dead_while_it_beats() -> None:
    slack = LEASE * DETECTION - LEASE / BEATS - LEASE / READS  # 1.42 s of a 5 s lease
    for stall in (0.5, slack / 2, slack - 0.01):
        for offset in range(5):
            assert held_dead_at(60.0, beat_offset=offset * 0.13, read_offset=offset * 0.07, stall=stall) > 60.0
    assert held_dead_at(60.0, beat_offset=0.0, read_offset=0.0, stall=LEASE * DETECTION) < 60.0  # one that is not
