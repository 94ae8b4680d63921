"""What the identity service refuses with."""

from __future__ import annotations


class IdentityRefused(Exception):
    """The resolver refused a sender (or an authorization profile denied them). `message` is safe to show;
    `reason` is for logs only."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message, self.reason = message, reason


class LinkFailed(Exception):
    """A link ceremony step failed; `message` is safe to show the user, `code` names the kind of failure:
    `invalid_code`, `expired_code`, `rate_limited`, `not_linked`, `policy`."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code
