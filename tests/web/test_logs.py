"""Structured logs: `--log-format json` gives one JSON object per line, with turn ids and no bodies or keys."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx

from afactors._logging import JsonFormatter, TextFormatter
from afactors.testing import serve_cli


def test_cli_json_logs_name_each_turn_and_leave_out_bodies_and_keys(state_dir: Path) -> None:
    args = ["--state-dir", str(state_dir), "--channel", "responses", "--api-key", "sekrit-key"]
    with serve_cli(*args, "--log-level", "INFO", "--log-format", "json") as (proc, url):
        made = httpx.post(
            url + "/v1/responses", json={"input": "a very private message"},
            headers={"Authorization": "Bearer sekrit-key"}, timeout=30,
        ).json()  # fmt: skip
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    [turn] = [r for r in records if r.get("turn_id") == made["id"]]
    assert (turn["logger"], turn["level"], turn["channel"], turn["status"]) == (
        "afactors.turns", "INFO", "responses", "completed",
    )  # fmt: skip
    assert turn["duration_ms"] >= 0
    assert "private" not in err and "sekrit" not in err


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("afactors.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    record.__dict__.update(extra)
    return record


def test_formatters_carry_the_operator_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record(turn_id="t1", status="failed", other="ignored")))
    assert entry["message"] == "hello you" and entry["turn_id"] == "t1" and entry["status"] == "failed"
    assert "other" not in entry
    assert TextFormatter().format(_record(turn_id="t1")).endswith("afactors.x: hello you turn_id=t1")
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("afactors.x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    assert "ValueError: bad" in json.loads(JsonFormatter().format(record))["exception"]
