"""Kill -9 with timers pending: a timer due while the host was down fires once after the restart, and a timer
whose turn was cut by the kill is not fired again (its inbox row replays; one turn commits)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = r"""
import json, sys, time
from pathlib import Path

import trio

import afactors
from afactors.model import ConversationKey, Envelope, Message, Update

mode, state_dir, runs_file, due = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
KEY = ConversationKey("default", "chat")


class Target:
    async def run(self, ctx):
        if ctx.kind == "timer":
            with runs_file.open("a") as f:
                f.write(json.dumps({"timer": ctx.timer.id, "turn": ctx.turn_id, "at": time.time()}) + "\n")
            if mode == "hang":
                print("FIRING", flush=True)
                await trio.sleep_forever()
            yield Update(delta="reminder: " + ctx.timer.payload["text"])
            return
        ctx.timers.at(due, id="t1", payload={"text": "stretch"})
        yield Update(delta="scheduled")


async def main():
    async with afactors.open_host(Target(), state_dir=state_dir, port=0) as host:
        if mode in ("schedule", "hang"):
            handle = await host.system.submit(Envelope(KEY, (Message("user", "remind me"),)))
            print("SCHEDULED", (await handle.reply()).text, flush=True)
            await trio.sleep_forever()
        with trio.fail_after(20):
            while host.timers.count() or host.store.count("inbox"):
                await trio.sleep(0.05)
        await trio.sleep(0.5)  # long enough for a second firing to show, if there were one
        turns = [turn for _, turn in host.store.scan("turns", KEY.path + "/")]
        print(json.dumps({
            "outputs": [turn.output[0].text if turn.output else "" for turn in turns],
            "timers": [(r.timer.fired, r.turn_id == turns[-1].turn_id) for _, r in host.store.scan("timers")],
            "due": host.store.count("timer_due"),
            "inbox": host.store.count("inbox"),
        }), flush=True)


trio.run(main)
"""


def child(mode: str, state: Path, runs: Path, due: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(state), str(runs), str(due)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_line(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(word):
            return line
    raise AssertionError(f"child ended before {word}: {proc.stderr.read() if proc.stderr else ''}")


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)  # reaps it and closes its pipes


def restart(state: Path, runs: Path) -> dict[str, object]:
    proc = child("serve", state, runs, 0)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def runs_of(runs: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in runs.read_text().splitlines()] if runs.exists() else []


@pytest.mark.slow
def test_a_timer_due_while_the_host_was_down_fires_once_after_restart(tmp_path: Path) -> None:
    state, runs = tmp_path / "state", tmp_path / "runs.jsonl"
    due = time.time() + 3.0
    proc = child("schedule", state, runs, due)
    try:
        assert "scheduled" in wait_line(proc, "SCHEDULED")
    finally:
        kill(proc)  # before the timer is due
    assert runs_of(runs) == []
    time.sleep(max(0.0, due + 0.5 - time.time()))  # due while nothing runs
    result = restart(state, runs)
    fired = runs_of(runs)
    assert [run["timer"] for run in fired] == ["t1"]
    assert result == {"outputs": ["scheduled", "reminder: stretch"], "timers": [[1, True]], "due": 0, "inbox": 0}


@pytest.mark.slow
def test_a_timer_whose_turn_was_killed_replays_its_turn_and_is_not_fired_again(tmp_path: Path) -> None:
    state, runs = tmp_path / "state", tmp_path / "runs.jsonl"
    proc = child("hang", state, runs, time.time() + 0.5)
    try:
        wait_line(proc, "FIRING")  # the timer fired: its turn is running
    finally:
        kill(proc)
    result = restart(state, runs)
    fired = runs_of(runs)
    assert [run["timer"] for run in fired] == ["t1", "t1"]
    assert fired[0]["turn"] == fired[1]["turn"]  # the same turn, replayed from the inbox, not a second firing
    assert result == {"outputs": ["scheduled", "reminder: stretch"], "timers": [[1, True]], "due": 0, "inbox": 0}
