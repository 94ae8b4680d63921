"""Configuration checks: bad settings fail at construction with a clear message."""

from __future__ import annotations

from typing import Any

import pytest

from afactors_telegram import ChatCommand, SendLimits, TelegramConfig
from afactors_telegram.commands import command_list, help_text

TOKEN = "123:AAtoken"


async def _handler(call: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"token": "nonsense"}, "bot token"),
        ({"token": TOKEN, "webhook_url": "ftp://x"}, "http(s) URL"),
        ({"token": TOKEN, "secret_token": "has space"}, "webhook secret"),
        ({"token": TOKEN, "secret_token": "x" * 257}, "webhook secret"),
        ({"token": TOKEN, "conversation_scope": "per_room"}, "conversation_scope"),
        ({"token": TOKEN, "accept_in_group": "sometimes"}, "accept_in_group"),
        ({"token": TOKEN, "commands": [ChatCommand("new", "clash", _handler)]}, "built-in"),
        ({"token": TOKEN, "commands": [ChatCommand("a", "x", _handler), ChatCommand("a", "y", _handler)]}, "unique"),
        ({"token": TOKEN, "webhook_max_connections": 0}, "1-100"),
        ({"token": TOKEN, "stream_interval": 0}, "positive"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TelegramConfig(**settings)


@pytest.mark.parametrize(
    ("name", "description"), [("Upper", "x"), ("with-dash", "x"), ("x" * 33, "x"), ("ok", ""), ("ok", "x" * 257)]
)
def test_bad_commands_are_refused(name: str, description: str) -> None:
    with pytest.raises(ValueError):
        ChatCommand(name, description, _handler)


@pytest.mark.parametrize("field", ["per_chat_per_second", "per_group_per_minute", "global_per_second"])
def test_rates_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SendLimits(**{field: 0})


def test_bursts_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="global_burst"):
        SendLimits(global_burst=0)


def test_derived_settings() -> None:
    config = TelegramConfig(token=TOKEN, webhook_url="https://example.com/hooks/tg")
    assert config.bot_id == 123
    assert config.webhook_path == "/hooks/tg"
    assert TelegramConfig(token=TOKEN, webhook_url="https://example.com").webhook_path == "/telegram/webhook"
    assert TOKEN not in repr(config)


def test_command_list_and_help() -> None:
    config = TelegramConfig(token=TOKEN, commands=[ChatCommand("weather", "Weather now", _handler)])
    names = [c["command"] for c in command_list(config.commands)]
    assert names == ["start", "new", "help", "link", "unlink", "login", "weather"]
    assert "/weather - Weather now" in help_text(config.commands)
