"""Kill -9 of a process mid-turn: the inboxed envelope replays on restart and commits exactly once (both backends,
`durable` and `fast`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import json, sys
from pathlib import Path

import trio

from afactors.actors import ActorSystem
from afactors.actors._keys import turn_key
from afactors.model import ConversationKey, Envelope, Message, Update
from afactors.store import Store

mode, state_dir, runs_file, durability = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
KEY = ConversationKey("acme", "chat")
ENVELOPE = Envelope(KEY, (Message("user", "pay the invoice"),), idempotency_key="update-1001")


class Target:
    async def run(self, ctx):
        with runs_file.open("a") as f:
            f.write(ctx.turn_id + "\n")
        ctx.state["paid"] = ctx.state.get("paid", 0) + 1
        yield Update(delta="working ")
        if mode == "crash":
            print("RUNNING", flush=True)
            await trio.sleep_forever()
        yield Update(delta="paid")


async def main():
    async with Store.open(state_dir, durability=durability) as store:
        async with ActorSystem.open(store, Target()) as system:
            handle = await system.submit(ENVELOPE)
            print("ACCEPTED", handle.turn_id, flush=True)
            reply = await handle.reply()
            snapshot = store.get("snapshots", KEY.path)
            print(json.dumps({
                "turn_id": handle.turn_id,
                "text": reply.text,
                "status": reply.status,
                "seq": snapshot.seq,
                "state": snapshot.state,
                "turns": [store.get("turns", turn_key(KEY.path, n)).turn_id for n in range(1, snapshot.seq + 1)],
                "inbox": store.count("inbox"),
            }), flush=True)


trio.run(main)
"""


def _start(tmp_path: Path, store: str | Path, mode: str, durability: str) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(store), str(tmp_path / "runs.txt"), durability],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen[str]) -> dict[str, object]:
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["durable", "fast"])
def test_kill_9_mid_turn_then_restart_commits_the_turn_exactly_once(
    tmp_path: Path, store_location: str | Path, durability: str
) -> None:
    child = _start(tmp_path, store_location, "crash", durability)
    try:
        accepted = child.stdout.readline().split()  # type: ignore[union-attr]
        assert accepted[0] == "ACCEPTED", child.stderr.read()  # type: ignore[union-attr]
        assert child.stdout.readline().strip() == "RUNNING"  # type: ignore[union-attr]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)  # reaps it and closes its pipes
    turn_id = accepted[1]
    runs = tmp_path / "runs.txt"
    assert runs.read_text().split() == [turn_id]

    # the redelivered envelope joins the replayed turn
    first = _finish(_start(tmp_path, store_location, "recover", durability))
    assert first == {
        "turn_id": turn_id,
        "text": "working paid",
        "status": "completed",
        "seq": 1,
        "state": {"paid": 1},
        "turns": [turn_id],
        "inbox": 0,
    }
    assert runs.read_text().split() == [turn_id, turn_id]  # the target ran again: at-least-once

    # the dedup key holds: nothing runs, the stored reply answers
    second = _finish(_start(tmp_path, store_location, "recover", durability))
    assert second == first
    assert runs.read_text().split() == [turn_id, turn_id]
