"""A broadcast to 10,000 Telegram chats (fake Bot API) through `POST /v1/pushes`, with kill -9 of the host in the
middle (`bench/broadcast.py` is the scenario): every chat gets the message exactly once, within the rate limits,
and asking for the same push again after the restart queues nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.broadcast import TEXT, one_run


@pytest.mark.slow
async def test_broadcast_to_10000_chats_survives_kill_9_and_sends_each_once(tmp_path: Path) -> None:
    result = await one_run(10_000, 500.0, tmp_path)
    counts = result["counts"]
    first_status, first, again_status, again = result["answers"]
    assert first_status == 202 and first["destinations"] == 10_000 and first["duplicate"] is False
    assert again_status == 200 and again["duplicate"] is True and again["id"] == first["id"]
    assert 0 < result["broadcast.sent_before_kill"] < 10_000  # the kill came in the middle
    assert counts.count(1) == 10_000, Counter(counts)  # exactly once each: none missing, none twice
    assert result["texts"] == {TEXT}
    assert result["broadcast.violations"] == 0  # the channel's limiter kept the fake's limits
