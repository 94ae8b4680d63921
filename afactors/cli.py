"""`python -m afactors`: serve a target over the installed channels until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio

from afactors import __version__
from afactors._logging import configure as configure_logging
from afactors.admin.cli import COMMANDS as OPERATOR_COMMANDS
from afactors.admin.cli import main as operator_main
from afactors.channel import ChannelPlugin, Secret, StartupError, installed_channel_names, installed_plugins
from afactors.config_file import ConfigError, Settings, effective, explicit_flags, resolve, to_toml
from afactors.host import Host, open_host
from afactors.model import BUSY_POLICIES
from afactors.store import DURABILITIES, StoreError
from afactors.store_cli import main as store_main
from afactors.targets import OpenAIChatAgent, TargetError, load_target


def build_parser(plugins: dict[str, ChannelPlugin]) -> argparse.ArgumentParser:
    """The flags of the host and of `plugins` (`--channel` takes any installed channel's name)."""
    parser = argparse.ArgumentParser(prog="python -m afactors", description="Host one agent behind many protocols.")
    parser.add_argument("--version", action="version", version=f"afactors {__version__}")
    parser.add_argument("--config", metavar="FILE", help="a TOML configuration file (flags override it)")
    parser.add_argument("--target", metavar="MODULE:ATTR", help="what to host (default: the built-in demo agent)")
    parser.add_argument("--model", help="host an OpenAI-compatible chat model instead of a target")
    parser.add_argument("--openai-base-url", help="chat-completions endpoint (default: $OPENAI_BASE_URL)")
    parser.add_argument(
        "--openai-api-key", action=Secret, env="OPENAI_API_KEY", help="key for that endpoint (default: $OPENAI_API_KEY)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--state-dir", default=".afactors", help="where the LMDB state lives (default: .afactors)")
    parser.add_argument(
        "--store", metavar="URL", help="keep the state in PostgreSQL instead (postgresql://...; the postgresql extra)"
    )
    parser.add_argument(
        "--node-id", metavar="ID", help="run as this node of a cluster on the PostgreSQL --store (docs/scale-out.md)"
    )
    parser.add_argument("--advertise", metavar="URL", help="a cluster node's URL for the other nodes: http://host:port")
    parser.add_argument(
        "--lease-seconds", type=float, default=10.0,
        help="a cluster node's lease: the others hold it dead once its heartbeat stood still for half of it "
        "and serve its conversations again within it",
    )  # fmt: skip
    parser.add_argument(
        "--channel", action="append", choices=installed_channel_names(), help="serve this channel (repeatable)"
    )
    parser.add_argument("--busy-policy", choices=sorted(BUSY_POLICIES), default="enqueue")
    parser.add_argument("--durability", choices=DURABILITIES, default="durable")
    parser.add_argument(
        "--api-key", action=Secret, append=True, help="require this bearer key (repeatable; one tenant per key)"
    )
    parser.add_argument(
        "--admin-key", action=Secret, env="AFACTORS_ADMIN_KEY",
        help="serve the admin API under /admin/ to this bearer key (default: $AFACTORS_ADMIN_KEY; none: off)",
    )  # fmt: skip
    parser.add_argument(
        "--cluster-secret", action=Secret, env="AFACTORS_CLUSTER_SECRET",
        help="the secret cluster nodes forward turns with (default: $AFACTORS_CLUSTER_SECRET; none: no cluster routes)",
    )  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=10.0, help="seconds running turns get at shutdown")
    parser.add_argument("--max-connections", type=int, help="open connections at most (default: fd limit - 256)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="seconds a request's headers may take")
    parser.add_argument("--body-timeout", type=float, default=60.0, help="seconds a request's body may take")
    parser.add_argument("--history-turns", type=int, help="earlier turns a target sees at most (default: all)")
    parser.add_argument("--history-tokens", type=int, help="tokens of earlier turns a target sees at most (estimated)")
    parser.add_argument(
        "--no-lean-routes", dest="lean_routes", action="store_false",
        help="serve every request through Quart, also the hot routes' lean views (to compare the two)",
    )  # fmt: skip
    parser.add_argument("--history-budget-mb", type=int, default=256, help="MiB of cached history in all")
    parser.add_argument("--tenant-budget-mb", type=int, default=64, help="MiB of cached history per tenant")
    parser.add_argument("--log-level", default="WARNING", help="WARNING (default), INFO (one line per turn), DEBUG")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="json: one object per line")
    parser.add_argument(
        "--otel", action="store_true", default=os.environ.get("AFACTORS_OTEL", "") not in ("", "0"),
        help="OpenTelemetry traces, a span per turn, exported as the OTEL_* variables say (default: OTLP/HTTP to "
        "localhost:4318; needs afactors[otel]; also on with AFACTORS_OTEL=1)",
    )  # fmt: skip
    for plugin in plugins.values():
        plugin.add_arguments(parser)
    return parser


def load_settings(parser: argparse.ArgumentParser, plugins: dict[str, ChannelPlugin], argv: list[str]) -> Settings:
    """The effective configuration: `--config`'s file (if any), then the flags `argv` sets; raises `ConfigError`."""
    explicit = explicit_flags(parser, argv)
    document: dict[str, object] = {}
    if path := explicit.get("config"):
        try:
            with open(path, "rb") as file:
                document = tomllib.load(file)
        except OSError as error:
            raise ConfigError(path, f"cannot read the file ({error.strerror})") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(path, f"not valid TOML: {error}") from None
    return resolve(document, explicit, parser, plugins, os.environ)


def config_main(plugins: dict[str, ChannelPlugin], argv: list[str]) -> int:
    """`python -m afactors config check|show [--json] [--config FILE] [flags]`: 0 valid, 2 refused (the reason on
    stderr). `show` prints the effective configuration (TOML, or JSON with --json), secrets masked."""
    parser = build_parser(plugins)
    parser.prog = "python -m afactors config"
    parser.add_argument("action", choices=("check", "show"), help="check: validate; show: print the configuration")
    parser.add_argument("--json", action="store_true", help="show as JSON")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(parser, plugins, argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.action == "check":
        channels = ", ".join(channel.name for channel in settings.channels) or "(none)"
        print(f"ok: {settings.host.host}:{settings.host.port}, channels {channels}")
    elif args.json:
        print(json.dumps(effective(settings), indent=2))
    else:
        print(to_toml(effective(settings)))
    return 0


DUPLICATE_SIGNAL_WINDOW = 0.5
"""Seconds after the first Ctrl-C in which another SIGINT counts as the same press: `uv run` forwards the
terminal's SIGINT to the server, which then sees it twice."""


async def serve(settings: Settings, target: object, tracer_provider: object = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully; a second signal during the drain stops at once.

    Signals are handled here, never as KeyboardInterrupt: a stop is quiet (no traceback) and state stays intact.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):  # what a signal pending when the receiver closes falls back to
        signal.signal(signum, signal.SIG_IGN)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as watchers:
            config = attrs.evolve(settings.host, tracer_provider=tracer_provider)
            async with open_host(target, config, channels=settings.channels) as host:
                print(f"afactors {__version__}: channels {', '.join(host.channels) or '(none)'}", flush=True)
                for url in host.urls:
                    print(f"serving on {url}", flush=True)
                if host.urls and host.config.web_ui:
                    print(f"chat: {host.urls[0]}/  status: {host.urls[0]}/status", flush=True)
                await signals.__anext__()
                print("shutting down (press Ctrl-C again to stop now)", flush=True)
                watchers.start_soon(_stop_now_on_signal, signals, host, trio.current_time() + DUPLICATE_SIGNAL_WINDOW)
            watchers.cancel_scope.cancel()


async def _stop_now_on_signal(signals: AsyncIterator[int], host: Host, ignore_until: float) -> None:
    async for _ in signals:
        if trio.current_time() < ignore_until:
            continue  # the same Ctrl-C, forwarded again by `uv run`
        print("stopping now", flush=True)
        host.stop_now()


def first_leaf(error: BaseException) -> BaseException:
    """The first non-group exception inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def named_channels(argv: list[str]) -> set[str] | None:
    """The channels `argv` names with `--channel` (only their plugins are imported); None when it names none, or
    when a configuration file or `--help` may need every plugin (a file's `[channels.<name>]` tables, the flags)."""
    names: set[str] = set()
    for flag, value in zip(argv, [*argv[1:], ""], strict=True):
        if flag in ("--config", "-h", "--help") or flag.startswith("--config="):
            return None
        if flag == "--channel":
            names.add(value)
        elif flag.startswith("--channel="):
            names.add(flag.removeprefix("--channel="))
    return names or None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OPERATOR_COMMANDS:
        return operator_main(argv)
    if argv[:1] == ["store"]:
        return store_main(argv[1:])
    if argv[:1] == ["config"]:
        return config_main(installed_plugins(), argv[1:])
    chosen = named_channels(argv)
    plugins = installed_plugins(chosen)
    if chosen is not None and build_parser(plugins).parse_known_args(argv)[1]:
        plugins = installed_plugins()  # flags of channels not chosen: accepted (and unused) as before
    parser = build_parser(plugins)
    parser.parse_args(argv)  # --help, --version and usage errors
    try:
        settings = load_settings(parser, plugins, argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = settings.args
    configure_logging(args.log_level, args.log_format)
    try:
        if args.model:
            target: object = OpenAIChatAgent(args.model, base_url=args.openai_base_url, api_key=args.openai_api_key)
        else:
            target = load_target(args.target) if args.target else None
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        provider = _tracer_provider() if args.otel else None
    except ImportError:
        print("error: --otel needs OpenTelemetry: pip install 'afactors[otel]'", file=sys.stderr)
        return 2
    status = 0
    try:
        trio.run(serve, settings, target, provider)
    except* (StoreError, StartupError, OSError) as group:
        print(f"error: {first_leaf(group)}", file=sys.stderr)
        status = 1
    finally:
        if provider is not None:
            provider.shutdown()  # exports the spans still batched
    return status


def _tracer_provider() -> Any:
    """The OpenTelemetry SDK's provider set up from the OTEL_* environment (ImportError without the extra)."""
    from afactors.host._otel import sdk_provider

    return sdk_provider()
