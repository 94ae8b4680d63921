"""The `activity` entry point: CLI flags, secrets from the environment, explicit anonymous mode."""

from __future__ import annotations

import argparse

import pytest

from afactors.channel import installed_plugins
from afactors_activity import ActivityChannel
from afactors_activity.config import DEFAULT_SERVICE_HOSTS
from afactors_activity.plugin import APP_ID_ENV, APP_PASSWORD_ENV, plugin


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    plugin.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_plugin_is_registered() -> None:
    assert installed_plugins()["activity"] is plugin


def test_without_credentials_the_channel_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(APP_ID_ENV, raising=False)
    assert plugin.create(parse()) is None


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APP_ID_ENV, "app-1")
    monkeypatch.setenv(APP_PASSWORD_ENV, "s3cret")
    channel = plugin.create(parse("--activity-path", "/bot/messages", "--activity-scope", "per_conversation"))
    assert isinstance(channel, ActivityChannel)
    config = channel.config
    assert (config.app_id, config.app_password, config.auth, config.path) == ("app-1", "s3cret", "jwt", "/bot/messages")
    assert config.conversation_scope == "per_conversation" and config.service_url_allowlist == DEFAULT_SERVICE_HOSTS
    assert "s3cret" not in repr(config)


def test_anonymous_mode_must_be_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(APP_ID_ENV, raising=False)
    channel = plugin.create(
        parse("--activity-auth", "disabled", "--activity-allow-service-url", "http://127.0.0.1:3978")
    )
    assert isinstance(channel, ActivityChannel)
    assert channel.config.auth == "disabled" and channel.config.service_url_allowlist == ("http://127.0.0.1:3978",)


def test_bad_settings_stop_the_start_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(APP_PASSWORD_ENV, raising=False)
    with pytest.raises(SystemExit, match="client secret"):
        plugin.create(parse("--activity-app-id", "app-1"))
    with pytest.raises(SystemExit, match="allowlist entry"):
        plugin.create(parse("--activity-auth", "disabled", "--activity-allow-service-url", "https://x/path"))
