"""Bot API error envelopes as the fake server returns them.

Descriptions are Telegram's own wording where it is known; where it is not, the text is our own choice
and says so in a comment ("[?]").
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed Bot API call: becomes ``{"ok": false, "error_code", "description", "parameters"?}``."""

    def __init__(self, error_code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict[str, Any]:
        """The JSON body Telegram sends for this error."""
        body: dict[str, Any] = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


def bad_request(detail: str) -> ApiError:
    """400 ``Bad Request: <detail>``."""
    return ApiError(400, f"Bad Request: {detail}")


def parse_error(detail: str) -> ApiError:
    """400 for malformed ``parse_mode`` markup."""
    return bad_request(f"can't parse entities: {detail}")


def forbidden(detail: str) -> ApiError:
    """403 ``Forbidden: <detail>`` (blocked, kicked, ...)."""
    return ApiError(403, f"Forbidden: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    """429 flood-wait envelope with ``parameters.retry_after``."""
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})


def migrated(new_chat_id: int) -> ApiError:
    """400 for a basic group that was upgraded to a supergroup."""
    return ApiError(
        400, "Bad Request: group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": new_chat_id}
    )


def conflict(detail: str) -> ApiError:
    """409 ``Conflict: <detail>`` (getUpdates while a webhook is set, or a second poller)."""
    return ApiError(409, f"Conflict: {detail}")


def not_found() -> ApiError:
    """404 for an unknown method, a malformed token or a missing file."""
    return ApiError(404, "Not Found")


def unauthorized() -> ApiError:
    """401 for a well-formed token that is not the bot's."""
    return ApiError(401, "Unauthorized")


CHAT_NOT_FOUND = "chat not found"
WEBHOOK_ACTIVE = "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
POLLER_REPLACED = "terminated by other getUpdates request; make sure that only one bot instance is running"
