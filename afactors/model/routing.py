"""Response targets: where a turn's answer (or a push) goes, as asked and as the host resolved it.

`ResponseTarget` is what a request asks for; `Routing` is what the host made of it at submit time (the concrete
destinations, what it left out and why). `parse_response_target` is the one wire codec for the JSON form that
Responses and Invocations accept (pure; raises `ValueError` with a message fit for a 400).
"""

from __future__ import annotations

from collections.abc import Mapping

from afactors.model.envelope import MAX_NAMED, TARGET_KINDS, Identity, ResponseTarget


def _names(value: object, field: str, most: int) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"'response_target.{field}' must be a non-empty array")
    if len(value) > most:
        raise ValueError(f"'response_target.{field}' may name at most {most} entries")
    return tuple(value)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
        raise ValueError(f"'{field}' must be a non-empty printable string of at most 256 characters")
    return value


def parse_identity(value: object, field: str) -> Identity:
    """`{"channel": str, "user": str}` as an `Identity`."""
    if not isinstance(value, Mapping):
        raise ValueError(f"'{field}' must be an object with 'channel' and 'user'")
    return Identity(_text(value.get("channel"), f"{field}.channel"), _text(value.get("user"), f"{field}.user"))


def parse_response_target(value: object, *, max_named: int = MAX_NAMED) -> ResponseTarget:
    """The wire form: a kind name (`"all_linked"`), or an object `{"kind", "channels"?, "identities"?,
    "echo_input"?}` where `channels` is a list of channel names and `identities` a list of
    `{"channel", "user"}`. Raises `ValueError` naming what is wrong."""
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise ValueError("'response_target' must be a kind name or an object with 'kind'")
    unknown = sorted(set(value) - {"kind", "channels", "identities", "echo_input"})
    if unknown:
        raise ValueError(f"'response_target' has unknown field(s): {', '.join(map(str, unknown))}")
    kind = value.get("kind")
    if kind not in TARGET_KINDS:
        raise ValueError(f"unknown response target kind {kind!r}; one of: {', '.join(TARGET_KINDS)}")
    echo = value.get("echo_input", False)
    if not isinstance(echo, bool):
        raise ValueError("'response_target.echo_input' must be a boolean")
    channels: tuple[str, ...] = ()
    identities: tuple[Identity, ...] = ()
    if kind == "channels":
        named = _names(value.get("channels"), "channels", max_named)
        channels = tuple(_text(n, "response_target.channels[]") for n in named)
    elif "channels" in value:
        raise ValueError("'response_target.channels' belongs to kind 'channels' only")
    if kind == "identities":
        found = _names(value.get("identities"), "identities", max_named)
        identities = tuple(parse_identity(i, "response_target.identities[]") for i in found)
    elif "identities" in value:
        raise ValueError("'response_target.identities' belongs to kind 'identities' only")
    return ResponseTarget(kind, channels, identities, echo_input=echo)
