"""One-time link codes (pure): made from a CSPRNG, shown in two groups of four, stored only as a digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""32 symbols without I, O, 0 and 1 (easy to read out and type): 8 of them carry 40 bits."""

CODE_LENGTH = 8


def new_code() -> str:
    """A fresh code, e.g. `K7QM-2XPA`."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def normalize(text: str) -> str | None:
    """The canonical form of what a user typed (case, spaces and dashes do not matter), or None if it cannot be
    a code at all."""
    raw = "".join(text.split()).replace("-", "").upper()
    if len(raw) != CODE_LENGTH or any(c not in ALPHABET for c in raw):
        return None
    return raw


def digest(tenant: str, code: str) -> str:
    """What the store keeps of a code: its SHA-256 within the tenant (so a code never crosses tenants)."""
    return hashlib.sha256(f"{tenant}\0{normalize(code) or code}".encode()).hexdigest()


def same(stored: str, candidate: str) -> bool:
    """Constant-time equality of two digests."""
    return hmac.compare_digest(stored.encode(), candidate.encode())
