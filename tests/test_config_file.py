"""The configuration file: a TOML document (+ environment, + flags over it) into HostConfig and the channels."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from afactors.channel import Secret, installed_plugins
from afactors.cli import build_parser
from afactors.config_file import (
    FLAG_KEYS,
    MASK,
    NOT_CONFIGURATION,
    ConfigError,
    Settings,
    channel_options,
    effective,
    explicit_flags,
    resolve,
    to_toml,
)
from afactors.host import DeliveryPolicy, HostConfig, RetentionConfig, ServerLimits

PLUGINS = installed_plugins()
TOKEN = "123:AAtoken"
EXAMPLE = Path(__file__).parents[1] / "docs" / "afactors.toml"


def settings(document: dict[str, Any], *argv: str, env: dict[str, str] | None = None) -> Settings:
    parser = build_parser(PLUGINS)
    return resolve(document, explicit_flags(parser, list(argv)), parser, PLUGINS, env or {})


def refused(document: dict[str, Any], *argv: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        settings(document, *argv, env=env)
    return error.value


def test_no_file_and_no_flags_is_the_default_host() -> None:
    result = settings({})
    assert result.host == HostConfig()
    assert [c.name for c in result.channels] == sorted(n for n, p in PLUGINS.items() if not p.needs_credentials)


def test_every_table_maps_to_the_python_api_objects() -> None:
    result = settings({
        "target": "afactors.targets.demo:DemoAgent", "log_level": "INFO", "log_format": "json",
        "host": {
            "port": 9100, "state_dir": "/tmp/x", "durability": "fast", "busy_policy": "reject", "mailbox_size": 4,
            "history_turns": 20, "web_ui": False, "drain_timeout": 3,
            "limits": {"header_timeout": 5, "max_connections": 100},
            "retention": {"dedup": "none", "batch": 50},
            "delivery": {"backoff": [1, 2], "max_attempts": 7},
        },
    })  # fmt: skip
    host = result.host
    assert (host.port, host.state_dir, host.durability, host.busy_policy) == (9100, "/tmp/x", "fast", "reject")
    assert (host.mailbox_size, host.history_turns, host.web_ui, host.drain_timeout) == (4, 20, False, 3.0)
    assert host.limits == ServerLimits(header_timeout=5.0, max_connections=100)
    assert host.retention == RetentionConfig(dedup=None, batch=50)
    assert host.delivery == DeliveryPolicy(backoff=(1.0, 2.0), max_attempts=7)
    assert host.actor_config().mailbox_size == 4
    assert (result.args.target, result.args.log_level, result.args.log_format) == (
        "afactors.targets.demo:DemoAgent", "INFO", "json",
    )  # fmt: skip


def test_a_channel_table_configures_the_channel_its_plugin_builds() -> None:
    result = settings(
        {"channels": {"enabled": ["telegram", "a2a"],
                      "telegram": {"token": "${TG}", "chat_rate": 2, "scope": "per_user"},
                      "a2a": {"skill": ["s1:Support"], "no_push": True}}},
        env={"TG": TOKEN},
    )  # fmt: skip
    telegram, a2a = result.channels
    assert telegram.config.token == TOKEN  # type: ignore[attr-defined]
    assert telegram.config.limits.per_chat_per_second == 2.0  # type: ignore[attr-defined]
    assert telegram.config.conversation_scope == "per_user"  # type: ignore[attr-defined]
    assert [s.name for s in a2a.card.skills] == ["Support"]  # type: ignore[attr-defined]
    assert a2a.card.push_notifications is False  # type: ignore[attr-defined]


def test_flags_override_the_file() -> None:
    document = {
        "host": {"port": 1, "history_budget": 1 << 20, "limits": {"body_timeout": 5}},
        "channels": {"telegram": {"token": "${TG}", "chat_rate": 2}},
    }
    result = settings(
        document, "--port", "0", "--history-budget-mb", "3", "--body-timeout", "9", "--telegram-chat-rate", "4",
        "--history-tokens", "3000", env={"TG": TOKEN},
    )  # fmt: skip
    assert (result.host.port, result.host.history_budget, result.host.limits.body_timeout) == (0, 3 << 20, 9.0)
    assert result.host.history_tokens == 3000
    telegram = next(c for c in result.channels if c.name == "telegram")
    assert telegram.config.limits.per_chat_per_second == 4.0  # type: ignore[attr-defined]


def test_environment_references_are_expanded_anywhere_and_a_missing_one_is_named() -> None:
    result = settings({"host": {"state_dir": "${BASE}/state", "api_keys": ["${K1}", "${K2}"]}},
                      env={"BASE": "/srv", "K1": "a", "K2": "b"})  # fmt: skip
    assert (result.host.state_dir, result.host.api_keys) == ("/srv/state", ("a", "b"))
    error = refused({"host": {"admin_key": "${NOPE}"}})
    assert str(error) == "host.admin_key: the environment variable NOPE is not set"


def test_documented_variables_fill_secrets_the_file_leaves_out_but_never_win_over_it() -> None:
    env = {"AFACTORS_ADMIN_KEY": "from-env", "MINE": "from-file", "AFACTORS_TELEGRAM_TOKEN": TOKEN}
    assert settings({}, env=env).host.admin_key == "from-env"
    assert settings({"host": {"admin_key": "${MINE}"}}, env=env).host.admin_key == "from-file"
    assert settings({}, "--admin-key", "flag", env=env).host.admin_key == "flag"
    assert "telegram" in [c.name for c in settings({}, env=env).channels]


@pytest.mark.parametrize(
    "document",
    [
        {"host": {"admin_key": "hunter2"}},
        {"host": {"api_keys": ["${OK}", "literal"]}},
        {"model": {"api_key": "sk-123"}},
        {"channels": {"telegram": {"token": TOKEN}}},
        {"channels": {"telegram": {"token": "prefix-${OK}"}}},
        {"channels": {"activity": {"app_password": "pw"}}},
    ],
)
def test_a_literal_secret_is_refused_with_how_to_fix_it(document: dict[str, Any]) -> None:
    error = refused(document, env={"OK": "x"})
    assert "a secret must not be written in the file" in error.message
    assert '"${SOME_VARIABLE}"' in error.message and "environment variable" in error.message
    assert error.key in {"host.admin_key", "host.api_keys", "model.api_key", "channels.telegram.token",
                         "channels.activity.app_password"}  # fmt: skip


@pytest.mark.parametrize(
    ("document", "key", "allowed"),
    [
        ({"prot": 1}, "prot", "channels, host, log_format, log_level, model, otel, target"),
        ({"host": {"prot": 1}}, "host.prot", "admin_key, advertise, api_keys, busy_policy"),
        ({"host": {"limits": {"x": 1}}}, "host.limits.x", "backlog, body_timeout, header_timeout"),
        ({"model": {"key": "x"}}, "model.key", "api_key, base_url, name"),
        ({"channels": {"telegramm": {}}}, "channels.telegramm", "a2a, activity"),
        ({"channels": {"telegram": {"tokn": "x"}}}, "channels.telegram.tokn", "accept_in_group, api_base, chat_rate"),
    ],
)
def test_unknown_keys_are_refused_with_the_allowed_ones(document: dict[str, Any], key: str, allowed: str) -> None:
    error = refused(document)
    assert error.key == key
    assert error.message.startswith("unknown key; allowed: ") and allowed in error.message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"host": {"port": "8000"}}, "host.port: expected an integer, not a string ('8000')"),
        ({"host": {"port": True}}, "host.port: expected an integer, not a boolean (True)"),
        ({"host": {"port": 1.5}}, "host.port: expected an integer, not a float (1.5)"),
        ({"host": {"drain_timeout": "10"}}, "host.drain_timeout: expected a number, not a string ('10')"),
        ({"host": {"web_ui": "yes"}}, "host.web_ui: expected true or false, not a string ('yes')"),
        ({"host": {"state_dir": 3}}, "host.state_dir: expected a string, not an integer (3)"),
        ({"host": {"busy_policy": "queue"}}, "host.busy_policy: expected one of enqueue, reject, interrupt, steer"),
        ({"host": {"api_keys": 5}}, "host.api_keys: expected an array, not an integer (5)"),
        ({"host": {"limits": 3}}, "host.limits: expected a table ([host.limits]), not an integer (3)"),
        ({"host": {"delivery": {"backoff": [1]}}}, "host.delivery.backoff: expected an array of 2 values, not 1"),
        ({"host": {"delivery": {"backoff": [1, "x"]}}}, "host.delivery.backoff[1]: expected a number"),
        ({"host": {"history_turns": "all"}}, "host.history_turns: expected an integer, not a string ('all')"),
        ({"host": {"retention": {"interval": 0}}}, "host.retention: retention interval must be greater than 0"),
        ({"host": {"history_turns": 0}}, "host: history_turns must be at least 1"),
        ({"log_format": "xml"}, "log_format: expected one of text, json, not 'xml'"),
        ({"target": 3}, "target: expected a string, not an integer (3)"),
        ({"model": "gpt"}, "model: expected a table ([model]), not a string ('gpt')"),
        ({"channels": {"enabled": "chat"}}, "channels.enabled: expected an array, not a string ('chat')"),
        ({"channels": {"enabled": ["nope"]}}, "channels.enabled[0]: expected one of a2a, activity"),
        ({"channels": {"telegram": {"scope": "everyone"}}}, "channels.telegram.scope: expected one of "),
        ({"channels": {"telegram": {"chat_rate": "2"}}}, "channels.telegram.chat_rate: expected a number"),
        ({"channels": {"mcp": {"stateless": 1}}}, "channels.mcp.stateless: expected true or false, not an integer"),
        ({"channels": {"mcp": {"max_sessions": 1.5}}}, "channels.mcp.max_sessions: expected an integer"),
        ({"channels": {"a2a": {"skill": [":x"]}}}, "channels.a2a.skill[0]: a skill looks like id[:name"),
    ],
)
def test_a_bad_value_names_the_key_and_what_is_allowed(document: dict[str, Any], message: str) -> None:
    assert str(refused(document)).startswith(message)


def test_a_channel_refusing_its_settings_is_named_by_its_table() -> None:
    error = refused({"channels": {"telegram": {"token": "${TG}"}}}, env={"TG": "not-a-token"})
    assert error.key == "channels.telegram" and "bot token" in error.message
    error = refused({"channels": {"enabled": ["telegram"]}})
    assert str(error) == "channels.enabled: channel 'telegram' needs credentials: see [channels.telegram]"


def test_every_flag_has_a_key_in_the_file() -> None:
    channel_dests = {a.dest for p in PLUGINS.values() for a in channel_options(p).values()}
    for action in build_parser(PLUGINS)._actions:
        assert action.dest in FLAG_KEYS or action.dest in NOT_CONFIGURATION or action.dest in channel_dests
    for name, plugin in PLUGINS.items():
        for key, action in channel_options(plugin).items():
            assert action.dest == f"{name}_{key}"  # one flag, one key: `--telegram-chat-rate` is chat_rate


def test_credentials_are_declared_as_secrets() -> None:
    secrets = {f"{n}.{k}" for n, p in PLUGINS.items() for k, a in channel_options(p).items() if isinstance(a, Secret)}
    assert {"telegram.token", "telegram.secret", "activity.app_password"} <= secrets


def test_effective_masks_secrets_and_round_trips_through_toml() -> None:
    env = {"K": "sekrit", "TG": TOKEN, "AFACTORS_ADMIN_KEY": "admsekrit"}
    result = settings(
        {"host": {"api_keys": ["${K}"], "retention": {"dedup": "none"}},
         "channels": {"enabled": ["telegram"], "telegram": {"token": "${TG}"}}},
        "--port", "0", env=env,
    )  # fmt: skip
    shown = effective(result)
    text = to_toml(shown)
    assert "sekrit" not in text and TOKEN not in text and "admsekrit" not in text
    assert shown["host"]["api_keys"] == [MASK] and shown["host"]["admin_key"] == MASK
    assert shown["channels"]["telegram"]["token"] == MASK
    parsed = tomllib.loads(text)
    assert parsed == shown
    parsed["host"].update(api_keys=["${K}"], admin_key="${AFACTORS_ADMIN_KEY}")
    parsed["channels"]["telegram"]["token"] = "${TG}"
    again = settings(parsed, env=env)
    assert again.host == result.host and [c.name for c in again.channels] == ["telegram"]


def test_the_documented_example_file_is_valid() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    env = dict.fromkeys(
        ("AFACTORS_KEY_TEAM_A", "AFACTORS_KEY_TEAM_B", "AFACTORS_ADMIN_KEY", "AFACTORS_TELEGRAM_SECRET",
         "AFACTORS_ACTIVITY_APP_PASSWORD"), "x",
    ) | {"AFACTORS_TELEGRAM_TOKEN": TOKEN}  # fmt: skip
    result = settings(document, env=env)
    assert result.host.api_keys == ("x", "x") and result.host.state_dir == "/var/lib/afactors"
    assert [c.name for c in result.channels] == document["channels"]["enabled"]
    for name, table in document["channels"].items():
        if name != "enabled":
            assert set(table) <= set(channel_options(PLUGINS[name]))


def test_the_token_budget_is_a_key_and_the_hooks_are_python_only() -> None:
    assert settings({"host": {"history_tokens": 4000}}).host.actor_config().history_tokens == 4000
    error = refused({"host": {"summarize": "app:summarize"}})
    assert error.key == "host.summarize" and "history_tokens" in error.message
    assert "summarize" not in error.message and "count_tokens" not in error.message
    assert "summarize" not in effective(settings({}))["host"]


def test_identity_settings_and_channel_link_requirements_are_keys_allowlists_are_python_only() -> None:
    result = settings({"host": {
        "identity": {"code_ttl": 120, "tiers": {"gold": "premium"}},
        "channel_auth": {"telegram": {"require_link": True}},
        "http_link_channels": ["responses"],
    }})  # fmt: skip
    host = result.host
    assert (host.identity.code_ttl, host.identity.tiers) == (120.0, {"gold": "premium"})
    assert host.channel_auth["telegram"].require_link and host.channel_auth["telegram"].allowlist == "inherit"
    assert host.http_link_channels == ("responses",)
    assert refused({"host": {"default_allowlist": {"native_ids": ["1"]}}}).key == "host.default_allowlist"
    assert refused({"host": {"identity": {"resolver": "x"}}}).key == "host.identity.resolver"
    error = refused({"host": {"channel_auth": {"telegram": {"allowlist": "open"}}}})
    assert str(error) == "host.channel_auth.telegram.allowlist: unknown key; allowed: require_link"
    shown = effective(result)["host"]
    assert shown["channel_auth"] == {"telegram": {"require_link": True}} and "resolver" not in shown["identity"]
