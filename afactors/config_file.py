"""The configuration file of `python -m afactors --config afactors.toml`, validated into the Python API's objects.

`resolve` maps a TOML document, the environment and the command line's explicit flags (which win) to `Settings`:
a `HostConfig` (with its `ServerLimits`, `RetentionConfig`, `DeliveryPolicy`), the channels to serve, built by
their plugins, and the flag-shaped values the CLI reads (target, model, logging). It reads nothing else (pure).

Layout (every key optional)::

    target = "app:agent"                  # --target
    log_level = "INFO"                    # --log-level; log_format: --log-format
    [model]                               # --model, --openai-base-url, --openai-api-key
    [host]                                # HostConfig's fields: port, state_dir, api_keys, history_turns ...
    [host.limits]                         # ServerLimits; [host.retention] RetentionConfig; [host.delivery] ...
    [channels]
    enabled = ["responses", "telegram"]   # --channel (default: every channel that is configured)
    [channels.telegram]                   # the channel's flags without "--telegram-": token, webhook_url ...

Strings may reference the environment as `${NAME}`. A secret (a flag declared with the `Secret` action: API keys,
the admin key, bot tokens, webhook secrets) must be exactly such a reference: a literal secret is an error. Every
error is a `ConfigError` naming the key (`channels.telegram.token: ...`) and what is allowed there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar

import attrs

from afactors.channel import Channel, ChannelPlugin, Secret
from afactors.host import HostConfig

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
T = TypeVar("T")
MASK = "***"
"""What `config show` prints in place of a secret that is set."""


class ConfigError(Exception):
    """A configuration the host refuses; `key` is the dotted path of the offending key ("" for the whole file)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key, self.message = key, message


@attrs.frozen
class FlagKey:
    """Where a host-wide flag's value lives in the file; `scale` multiplies the flag's value (MiB -> bytes)."""

    path: tuple[str, ...]
    scale: int = 1


FLAG_KEYS: dict[str, FlagKey] = {
    "target": FlagKey(("target",)),
    "log_level": FlagKey(("log_level",)),
    "log_format": FlagKey(("log_format",)),
    "otel": FlagKey(("otel",)),
    "model": FlagKey(("model", "name")),
    "openai_base_url": FlagKey(("model", "base_url")),
    "openai_api_key": FlagKey(("model", "api_key")),
    "channel": FlagKey(("channels", "enabled")),
    "host": FlagKey(("host", "host")),
    "port": FlagKey(("host", "port")),
    "state_dir": FlagKey(("host", "state_dir")),
    "store": FlagKey(("host", "store")),
    "node_id": FlagKey(("host", "node_id")),
    "advertise": FlagKey(("host", "advertise")),
    "lease_seconds": FlagKey(("host", "lease_seconds")),
    "busy_policy": FlagKey(("host", "busy_policy")),
    "durability": FlagKey(("host", "durability")),
    "api_key": FlagKey(("host", "api_keys")),
    "admin_key": FlagKey(("host", "admin_key")),
    "cluster_secret": FlagKey(("host", "cluster_secret")),
    "drain_timeout": FlagKey(("host", "drain_timeout")),
    "history_turns": FlagKey(("host", "history_turns")),
    "history_tokens": FlagKey(("host", "history_tokens")),
    "history_budget_mb": FlagKey(("host", "history_budget"), scale=1 << 20),
    "tenant_budget_mb": FlagKey(("host", "tenant_budget"), scale=1 << 20),
    "max_connections": FlagKey(("host", "limits", "max_connections")),
    "header_timeout": FlagKey(("host", "limits", "header_timeout")),
    "body_timeout": FlagKey(("host", "limits", "body_timeout")),
    "lean_routes": FlagKey(("host", "limits", "lean")),
}
"""Every host-wide flag (by argparse dest) and its key in the file. Channel flags map by their prefix instead."""

NOT_CONFIGURATION = frozenset({"help", "version", "config", "action", "json"})
"""Flags that say what to do rather than how to serve."""

TOP_KEYS = ("channels", "host", "log_format", "log_level", "model", "otel", "target")


@attrs.frozen
class Settings:
    """The effective configuration: what `python -m afactors` serves and how.

    `args`: every flag's effective value (file, then flags, over the defaults), as `argparse` would have made it.
    `secrets`: the dotted keys holding secrets (masked by `show`). `channel_keys`: each served channel's keys.
    """

    host: HostConfig
    channels: tuple[Channel, ...]
    args: argparse.Namespace = attrs.field(eq=False)
    channel_keys: dict[str, dict[str, str]]
    secrets: frozenset[str]


def channel_options(plugin: ChannelPlugin) -> dict[str, argparse.Action]:
    """A channel's file keys and the flags they stand for: each flag its plugin adds, named without the
    `--<channel>-` prefix, dashes as underscores (`--telegram-webhook-url` -> `webhook_url`)."""
    parser = argparse.ArgumentParser(add_help=False)
    plugin.add_arguments(parser)
    prefix = f"{plugin.name}_"
    return {action.dest.removeprefix(prefix): action for action in parser._actions}


def explicit_flags(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, Any]:
    """The flags `argv` sets (by dest), without the defaults of those it leaves out."""
    defaults = {action: action.default for action in parser._actions}
    for action in defaults:
        action.default = argparse.SUPPRESS
    try:
        return vars(parser.parse_args(argv))
    finally:
        for action, default in defaults.items():
            action.default = default


def resolve(
    document: Mapping[str, Any],
    explicit: Mapping[str, Any],
    parser: argparse.ArgumentParser,
    plugins: Mapping[str, ChannelPlugin],
    env: Mapping[str, str],
) -> Settings:
    """Validate `document` (a parsed TOML file, {} without one) with `explicit` flags over it into `Settings`.

    Raises `ConfigError`. Channels are built by their plugins from the merged values.
    """
    actions = {action.dest: action for action in parser._actions}
    options = {name: channel_options(plugin) for name, plugin in plugins.items()}
    _check_keys(document, TOP_KEYS, "")
    secret_keys = {".".join(flag.path) for dest, flag in FLAG_KEYS.items() if isinstance(actions[dest], Secret)}
    for name, by_key in options.items():
        secret_keys.update(f"channels.{name}.{key}" for key, action in by_key.items() if isinstance(action, Secret))
    _refuse_literal_secrets(document, secret_keys, "")
    document = _expand(document, "", env)

    values: dict[str, Any] = {action.dest: action.default for action in parser._actions}
    values.update(_flag_values(document, actions, options))
    values.update((dest, value) for dest, value in explicit.items() if dest not in NOT_CONFIGURATION)
    host_table = _table(document.get("host", {}), "host")
    for dest, flag in FLAG_KEYS.items():
        if flag.path[0] == "host" and dest in explicit:
            _assign(host_table, flag.path[1:], _scaled(explicit[dest], flag.scale))
    _secrets_from_env(actions.values(), env, values, host_table)
    host = build(HostConfig, host_table, "host")
    try:
        host.actor_config()
        host.check_cluster()
        if host.node_id is not None and not host.cluster:  # (`open_host` lets an LMDB host name itself)
            raise ValueError("--node-id runs a cluster node, which needs a PostgreSQL store: --store postgresql://...")
    except ValueError as error:
        raise ConfigError("host", str(error)) from None
    args = argparse.Namespace(**values)
    channels = _create_channels(plugins, args)
    keys = {channel.name: {key: action.dest for key, action in options[channel.name].items()} for channel in channels}
    return Settings(host, channels, args, keys, frozenset(secret_keys))


def _flag_values(
    document: Mapping[str, Any],
    actions: Mapping[str, argparse.Action],
    options: Mapping[str, dict[str, argparse.Action]],
) -> dict[str, Any]:
    """The file's values of flags outside `[host]` (target, logging, model, channels), by flag dest."""
    values: dict[str, Any] = {}
    for dest, flag in FLAG_KEYS.items():
        if flag.path[0] != "host" and (found := _lookup(document, flag.path)) is not None:
            values[dest] = flag_value(actions[dest], found, ".".join(flag.path))
    _check_keys(_table(document.get("model", {}), "model"), ("api_key", "base_url", "name"), "model")
    channels_table = _table(document.get("channels", {}), "channels")
    _check_keys(channels_table, ("enabled", *sorted(options)), "channels")
    for name, by_key in options.items():
        table = _table(channels_table.get(name, {}), f"channels.{name}")
        _check_keys(table, sorted(by_key), f"channels.{name}")
        for key, value in table.items():
            values[by_key[key].dest] = flag_value(by_key[key], value, f"channels.{name}.{key}")
    return values


def _secrets_from_env(
    actions: Iterable[argparse.Action], env: Mapping[str, str], values: dict[str, Any], host_table: dict[str, Any]
) -> None:
    """Fill each secret neither file nor flag set from its documented environment variable."""
    for action in actions:
        if not (isinstance(action, Secret) and action.env and env.get(action.env)):
            continue
        from_env = [env[action.env]] if action.append else env[action.env]
        flag = FLAG_KEYS.get(action.dest)
        if flag is not None and flag.path[0] == "host":
            if _lookup(host_table, flag.path[1:]) is None:
                _assign(host_table, flag.path[1:], from_env)
        elif not values.get(action.dest):
            values[action.dest] = from_env


def _create_channels(plugins: Mapping[str, ChannelPlugin], args: argparse.Namespace) -> tuple[Channel, ...]:
    """The channels to serve: those named, or every one that is configured (needs no missing credentials)."""
    chosen: list[Channel] = []
    for name in args.channel or sorted(plugins):
        try:
            channel = plugins[name].create(args)
        except SystemExit as refused:
            raise ConfigError(f"channels.{name}", str(refused.code).removeprefix(f"{name}: ")) from None
        if channel is None and args.channel:
            raise ConfigError("channels.enabled", f"channel {name!r} needs credentials: see [channels.{name}]")
        if channel is not None:
            chosen.append(channel)
    return tuple(chosen)


def flag_value(action: argparse.Action, value: Any, key: str) -> Any:
    """A file value checked and converted as `action`'s flag would be (type, choices, repetition, on/off)."""
    if action.nargs == 0:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, not {_describe(value)}")
        return action.const if value else action.default
    if isinstance(action, argparse._AppendAction) or (isinstance(action, Secret) and action.append):
        if not isinstance(value, list):
            raise ConfigError(key, f"expected an array, not {_describe(value)}")
        return [_flag_scalar(action, item, f"{key}[{i}]") for i, item in enumerate(value)]
    return _flag_scalar(action, value, key)


def _flag_scalar(action: argparse.Action, value: Any, key: str) -> Any:
    kind = action.type
    if kind is int or kind is float:
        value = _typed(kind, value, key)
    elif not isinstance(value, str):
        raise ConfigError(key, f"expected a string, not {_describe(value)}")
    elif callable(kind) and kind is not str:
        try:
            value = kind(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
            raise ConfigError(key, str(error)) from None
    if action.choices is not None and value not in action.choices:
        raise ConfigError(key, f"expected one of {', '.join(map(str, action.choices))}, not {value!r}")
    return value


def build(cls: type[T], table: Any, key: str) -> T:
    """An attrs class from a table of its fields (nested attrs classes from sub-tables), checked by type."""
    table = _table(table, key)
    hints = typing.get_type_hints(cls)
    fields = [field.name for field in attrs.fields(cls) if field.init and _settable(hints[field.name])]  # type: ignore[arg-type]
    _check_keys(table, fields, key)
    kwargs = {name: _typed(hints[name], value, f"{key}.{name}") for name, value in table.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(key, str(error)) from None


def _settable(hint: Any) -> bool:
    """Whether a field of this type can be written in a file: numbers, strings, booleans, choices, arrays and tables
    of them, nested config classes. Hooks and plug-in objects (a summariser, a resolver, an allowlist) cannot:
    they are set through the Python API."""
    origin, parts = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return all(_settable(part) for part in parts if part is not type(None))
    if origin is tuple:
        return all(_settable(part) for part in parts if part is not Ellipsis)
    if origin is dict:
        return parts[0] is str and _settable(parts[1])
    return origin in (Literal, os.PathLike) or attrs.has(hint) or hint in (bool, int, float, str)


def _typed(hint: Any, value: Any, key: str) -> Any:
    """`value` checked against the field type `hint` (TOML has no null: "none" sets an optional number to None)."""
    origin, parts = typing.get_origin(hint), typing.get_args(hint)
    if attrs.has(hint):
        return build(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        members = [part for part in parts if part is not type(None)]
        if len(members) < len(parts) and value == "none" and str not in members:
            return None
        if str in members:
            return _typed(str, value, key)
        return _typed(members[0], value, key)
    if origin is Literal:
        if value not in parts:
            raise ConfigError(key, f"expected one of {', '.join(map(str, parts))}, not {_describe(value)}")
        return value
    if origin is dict:
        table = _table(value, key)
        return {name: _typed(parts[1], item, f"{key}.{name}") for name, item in table.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected an array, not {_describe(value)}")
        if len(parts) == 2 and parts[1] is Ellipsis:
            return tuple(_typed(parts[0], item, f"{key}[{i}]") for i, item in enumerate(value))
        if len(value) != len(parts):
            raise ConfigError(key, f"expected an array of {len(parts)} values, not {len(value)}")
        return tuple(_typed(part, item, f"{key}[{i}]") for i, (part, item) in enumerate(zip(parts, value, strict=True)))
    expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint)
    if expected is None:
        raise ConfigError(key, "cannot be set in a configuration file")
    ok = isinstance(value, hint) if hint is not float else isinstance(value, int | float)
    if not ok or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(key, f"expected {expected}, not {_describe(value)}")
    return float(value) if hint is float else value


_KINDS = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"), (list, "an array"))


def _describe(value: Any) -> str:
    """A TOML value's kind and the value, for error messages: "a string ('8000')"."""
    if isinstance(value, dict):
        return "a table"
    kind = next((name for cls, name in _KINDS if isinstance(value, cls)), "a date or time")
    return f"{kind} ({value!r})"


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a table ([{key}]), not {_describe(value)}")
    return dict(value)


def _check_keys(table: Mapping[str, Any], allowed: typing.Sequence[str], key: str) -> None:
    for name in table:
        if name not in allowed:
            where = f"{key}.{name}" if key else name
            raise ConfigError(where, f"unknown key; allowed: {', '.join(sorted(allowed))}")


def _lookup(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(document, Mapping) or part not in document:
            return None
        document = document[part]
    return document


def _assign(table: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `value` at `path` inside `table`, copying (or making) the sub-tables on the way."""
    for part in path[:-1]:
        inner = _table(table.get(part, {}), part)
        table[part] = inner
        table = inner
    table[path[-1]] = value


def _scaled(value: Any, scale: int) -> Any:
    return value * scale if scale != 1 and value is not None else value


def _refuse_literal_secrets(document: Any, secrets: set[str], key: str) -> None:
    if isinstance(document, dict):
        for name, value in document.items():
            _refuse_literal_secrets(value, secrets, f"{key}.{name}" if key else name)
    elif key in secrets:
        for item in document if isinstance(document, list) else [document]:
            if isinstance(item, str) and not ENV_REFERENCE.fullmatch(item):
                leaf = key.rpartition(".")[2]
                raise ConfigError(
                    key,
                    f'a secret must not be written in the file: write {leaf} = "${{SOME_VARIABLE}}" '
                    "and set that environment variable",
                )


def _expand(value: Any, key: str, env: Mapping[str, str]) -> Any:
    """Every `${NAME}` in the document's strings replaced by the variable's value."""
    if isinstance(value, dict):
        return {name: _expand(item, f"{key}.{name}" if key else name, env) for name, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, f"{key}[{i}]", env) for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def variable(match: re.Match[str]) -> str:
        if match[1] not in env:
            raise ConfigError(key, f"the environment variable {match[1]} is not set")
        return env[match[1]]

    return ENV_REFERENCE.sub(variable, value)


def effective(settings: Settings) -> dict[str, Any]:
    """The effective configuration as a document of the file's layout, secrets masked (None values left out)."""
    args = vars(settings.args)
    document: dict[str, Any] = {}
    for dest, flag in FLAG_KEYS.items():
        if flag.path[0] not in ("host", "channels"):
            _assign(document, flag.path, args[dest])
    document["host"] = _none_spelled(_settable_fields(settings.host), settings.secrets, "host")
    channels: dict[str, Any] = {"enabled": [channel.name for channel in settings.channels]}
    for name, keys in settings.channel_keys.items():
        channels[name] = {key: _plain(args[dest]) for key, dest in keys.items()}
    document["channels"] = channels
    masked: dict[str, Any] = _masked(_without_none(document), settings.secrets, "")
    return masked


def _settable_fields(config: Any) -> dict[str, Any]:
    """An attrs config object's settable fields (see `_settable`) as a plain table, recursively."""
    hints = typing.get_type_hints(type(config))
    table = {}
    for field in attrs.fields(type(config)):
        if field.init and _settable(hints[field.name]):
            value = getattr(config, field.name)
            if value is None and str in typing.get_args(hints[field.name]):
                continue  # an unset optional string: "none" would read back as that string, so leave it out
            table[field.name] = _settable_fields(value) if attrs.has(type(value)) else _plain(value)
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _settable_fields(item) if attrs.has(type(item)) else _plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _none_spelled(value: Any, secrets: frozenset[str], key: str) -> Any:
    """A host table with None written as "none" (as the file spells it), except for unset secrets."""
    if isinstance(value, dict):
        return {name: _none_spelled(item, secrets, f"{key}.{name}") for name, item in value.items()}
    return "none" if value is None and key not in secrets else value


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _without_none(item) for name, item in value.items() if item is not None}
    return value


def _masked(value: Any, secrets: frozenset[str], key: str) -> Any:
    if isinstance(value, dict):
        return {name: _masked(item, secrets, f"{key}.{name}" if key else name) for name, item in value.items()}
    if key in secrets and value:
        return [MASK for _ in value] if isinstance(value, list) else MASK
    return value


def to_toml(document: Mapping[str, Any]) -> str:
    """`document` (str, int, float, bool, arrays of them, tables) as TOML text."""
    sections: list[tuple[str, list[str]]] = []

    def walk(table: Mapping[str, Any], header: str) -> None:
        sections.append((header, [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not _is_table(v)]))
        for name, value in table.items():
            if _is_table(value):
                walk(value, f"{header}.{_toml_key(name)}" if header else _toml_key(name))

    walk(document, "")
    lines: list[str] = []
    for header, entries in sections:
        lines += [f"[{header}]"] if header else []
        lines += [*entries, ""]
    return "\n".join(lines).strip() + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
