"""The `serviceUrl` allowlist (pure): where replies, and with them the bot's access token, may be sent.

An entry is either a host name (`botframework.com`: that host and its subdomains, over https on the default
port) or an origin (`https://host:port` or `http://127.0.0.1:8080`: exactly that scheme, host and port).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def http_url_parts(url: str) -> SplitResult | None:
    """The parts of an http(s) URL without credentials, query or fragment; None when it is anything else."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.password is not None or parts.query or parts.fragment or "\\" in url:
        return None
    return parts


def check_allowlist_entry(entry: str) -> None:
    """Raise ValueError unless `entry` is a host name or an http(s) origin."""
    if "://" in entry:
        parts = http_url_parts(entry)
        if parts is None or parts.path not in ("", "/"):
            raise ValueError(f"allowlist entry {entry!r} is not an origin like https://host[:port]")
    elif not entry or "/" in entry or ":" in entry or entry.startswith(".") or " " in entry:
        raise ValueError(f"allowlist entry {entry!r} is not a host name like botframework.com")


def _matches(parts: SplitResult, entry: str) -> bool:
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    if "://" in entry:
        allowed = http_url_parts(entry)
        if allowed is None:
            return False
        allowed_port = allowed.port or _DEFAULT_PORTS[allowed.scheme]
        return (allowed.scheme, (allowed.hostname or "").lower(), allowed_port) == (parts.scheme, host, port)
    suffix = entry.lower()
    return parts.scheme == "https" and port == 443 and (host == suffix or host.endswith("." + suffix))


def is_allowed(service_url: str, allowlist: Iterable[str]) -> bool:
    """Whether replies may be posted to `service_url`."""
    parts = http_url_parts(service_url)
    return parts is not None and any(_matches(parts, entry) for entry in allowlist)


def normalized(service_url: str) -> str:
    """`service_url` for comparisons: scheme and host lower-cased, no trailing slash."""
    parts = urlsplit(service_url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def same_service_url(a: str, b: str) -> bool:
    """Whether two service URLs name the same endpoint (a trailing slash and letter case of the host aside)."""
    return normalized(a) == normalized(b)
