"""Store keys of the identity records: made only here."""

from __future__ import annotations

import hashlib


def identity_key(tenant: str, key: str) -> str:
    return f"{tenant}/{key}"


def link_key(tenant: str, channel: str, native_id: str) -> str:
    return f"{tenant}/{channel}/{native_id}"


def claim_key(tenant: str, claim: str, value: str) -> str:
    """The link row of a verified claim value (kind `links`): which isolation key presented it."""
    return f"{tenant}/~claim/{claim}/{hashlib.sha256(value.encode()).hexdigest()}"


def code_key(digest: str) -> str:
    return f"link/{digest}"


def audit_prefix(tenant: str, key: str) -> str:
    return f"{tenant}/{key}/"


def audit_key(tenant: str, key: str, at_ns: int, suffix: str) -> str:
    return f"{audit_prefix(tenant, key)}{at_ns:020d}-{suffix}"


def conversation_of(key: str) -> str:
    """The conversation id of an isolation key's sessions (before any `/new`)."""
    return f"id:{key}"
