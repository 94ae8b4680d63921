"""Log output for `python -m afactors`: plain text or one JSON object per line (`--log-format json`).

Records may carry `extra` fields named in `FIELDS` (turn id, channel, status, duration); they are added to the
JSON object and appended to text lines. afactors never logs message bodies or keys at INFO and above.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

FIELDS = ("turn_id", "channel", "status", "duration_ms")
"""The `extra` fields a log record may carry for operators."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `time` (epoch seconds), `level`, `logger`, `message`, the `FIELDS` it carries,
    and `exception` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The usual text line, with `key=value` for each of the `FIELDS` the record carries."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{field}={getattr(record, field)}" for field in FIELDS if hasattr(record, field))
        return f"{line} {fields}" if fields else line


def configure(level: str, fmt: str) -> None:
    """Send the root logger's records to stderr at `level`, as `fmt` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
