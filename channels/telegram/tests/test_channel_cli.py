"""The entry-point plugin: CLI flags, the token from the environment, clear errors for bad settings."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from afactors.host import installed_plugins
from afactors_telegram import TelegramChannel, plugin
from afactors_telegram.plugin import TOKEN_ENV

TOKEN = "123:AAtoken"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    plugin.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_plugin_is_registered_as_an_entry_point() -> None:
    assert installed_plugins()["telegram"] is plugin
    assert plugin.needs_credentials


def test_without_a_token_the_channel_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert plugin.create(parse()) is None


def test_the_token_comes_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    channel = plugin.create(parse())
    assert isinstance(channel, TelegramChannel) and channel.config.token == TOKEN
    assert channel.config.webhook_url is None  # a token and no webhook URL: long polling
    flagged = plugin.create(parse("--telegram-token", "456:BBother"))
    assert flagged is not None and flagged.config.token == "456:BBother"


def test_every_flag_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    channel = plugin.create(parse(
        "--telegram-token", TOKEN, "--telegram-api-base", "http://127.0.0.1:9", "--telegram-webhook-url",
        "https://bot.example.com/tg", "--telegram-secret", "abc_DEF-1", "--telegram-scope", "per_conversation",
        "--telegram-accept-in-group", "all", "--telegram-chat-rate", "2", "--telegram-global-rate", "100",
    ))  # fmt: skip
    assert channel is not None
    config = channel.config
    assert (config.api_base, config.webhook_url, config.secret_token) == (
        "http://127.0.0.1:9",
        "https://bot.example.com/tg",
        "abc_DEF-1",
    )
    assert (config.conversation_scope, config.accept_in_group) == ("per_conversation", "all")
    assert (config.limits.per_chat_per_second, config.limits.global_per_second) == (2.0, 100.0)
    assert config.webhook_path == "/tg"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--telegram-token", "not-a-token"), "bot token"),
        (("--telegram-token", TOKEN, "--telegram-secret", "no spaces allowed"), "webhook secret"),
        (("--telegram-token", TOKEN, "--telegram-webhook-url", "ftp://x"), "http(s) URL"),
        (("--telegram-token", TOKEN, "--telegram-global-rate", "0"), "global_per_second"),
    ],
)
def test_bad_flags_stop_with_a_clear_message(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        plugin.create(parse(*argv))
    assert message in str(stopped.value) and str(stopped.value).startswith("telegram: ")


def test_the_cli_help_lists_the_flags() -> None:
    out = subprocess.run([sys.executable, "-m", "afactors", "--help"], capture_output=True, text=True, timeout=30)
    for flag in ("--telegram-token", "--telegram-api-base", "--telegram-webhook-url", "--telegram-secret"):
        assert flag in out.stdout


def test_a_rejected_token_stops_the_cli_with_a_clear_error(tmp_path: object) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "afactors", "--port", "0", "--state-dir", str(tmp_path), "--channel", "telegram",
         "--telegram-token", TOKEN, "--telegram-api-base", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert "cannot reach the Telegram Bot API" in out.stderr
    assert TOKEN not in out.stderr


def test_an_unreachable_bot_api_stops_the_cli_with_a_message(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "afactors", "--port", "0", "--state-dir", str(tmp_path / "state"),
         "--telegram-token", TOKEN, "--telegram-api-base", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "cannot reach the Telegram Bot API at http://127.0.0.1:9" in out.stderr
    assert "Traceback" not in out.stderr and "AAtoken" not in out.stderr
