"""A small Bot API client over httpx (runs on trio): one method call, one file download, typed errors."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import trio

UploadFile = tuple[str, bytes, str]
"""(file name, bytes, media type) of a multipart upload."""


class TelegramError(Exception):
    """Telegram answered `{"ok": false, ...}` (or a non-JSON error page)."""

    def __init__(self, method: str, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(f"{method}: {code} {description}")
        self.method = method
        self.code = code
        self.description = description
        params = parameters or {}
        retry_after = params.get("retry_after")
        migrate = params.get("migrate_to_chat_id")
        self.retry_after: float | None = float(retry_after) if isinstance(retry_after, (int, float)) else None
        self.migrate_to_chat_id: int | None = migrate if type(migrate) is int else None

    @property
    def chat_gone(self) -> bool:
        """The bot cannot write to this chat any more (blocked, kicked, chat deleted)."""
        return self.code == 403 or (self.code == 400 and "chat not found" in self.description.lower())

    @property
    def bad_markup(self) -> bool:
        """Telegram could not parse the formatting (send it again as plain text)."""
        return self.code == 400 and "can't parse entities" in self.description.lower()

    @property
    def not_modified(self) -> bool:
        """An edit to the text the message already has."""
        return self.code == 400 and "message is not modified" in self.description.lower()

    @property
    def retryable(self) -> bool:
        """A flood wait or a server-side failure: the same call may succeed later."""
        return self.code == 429 or self.code >= 500


class NetworkError(Exception):
    """The Bot API could not be reached, or did not answer in time.

    `ambiguous`: the request may have reached Telegram (it was sent; the answer was lost or late), so a
    message may have been posted; False when it certainly was not (no connection).
    """

    def __init__(self, message: str, *, ambiguous: bool = True) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before a request was sent."""


class _RedactTokens(logging.Filter):
    """Keeps bot tokens out of httpx's request log lines (they are part of every Bot API URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tokens and isinstance(record.args, tuple):
            record.args = tuple(self._clean(arg) for arg in record.args)
        return True

    def _clean(self, value: Any) -> Any:
        text = str(value)
        if not any(token in text for token in self.tokens):
            return value
        for token in self.tokens:
            text = text.replace(token, "<token>")
        return text


_REDACT = _RedactTokens()
logging.getLogger("httpx").addFilter(_REDACT)


MAX_CONNECTIONS = 32


def http_client(connections: int = MAX_CONNECTIONS) -> httpx.AsyncClient:
    """An httpx client sized for `BotApiClient` (keep-alive connections to one host)."""
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))


class BotApiClient:
    """Calls `<api_base>/bot<token>/<method>`; the caller owns `http` (its connection pool and lifetime).

    At most `MAX_CONNECTIONS` requests are handed to httpx at once; the rest queue in a trio limiter
    (httpcore's pool does work proportional to its queue on every request, quadratic with thousands).
    """

    def __init__(self, http: httpx.AsyncClient, token: str, api_base: str, *, timeout: float = 30.0) -> None:
        self._http = http
        self._base = f"{api_base.rstrip('/')}/bot{token}"
        self._files = f"{api_base.rstrip('/')}/file/bot{token}"
        self._timeout = timeout
        self._slots = trio.CapacityLimiter(MAX_CONNECTIONS)
        _REDACT.tokens.add(token)

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   files: dict[str, UploadFile] | None = None, timeout: float | None = None) -> Any:  # fmt: skip
        """The `result` of one method call; raises `TelegramError` or `NetworkError`."""
        url = f"{self._base}/{method}"
        wait = httpx.Timeout(timeout or self._timeout, connect=min(10.0, timeout or self._timeout))
        try:
            async with self._slots:
                if files:
                    data = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in (params or {}).items()}
                    response = await self._http.post(url, data=data, files=files, timeout=wait)
                else:
                    response = await self._http.post(
                        url,
                        content=orjson.dumps(params or {}),
                        headers={"Content-Type": "application/json"},
                        timeout=wait,
                    )
        except httpx.TransportError as exc:
            raise NetworkError(f"{method}: {type(exc).__name__}", ambiguous=not isinstance(exc, _NOT_SENT)) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TelegramError(method, response.status_code, response.reason_phrase or "no JSON answer")
        if body.get("ok") is True and response.is_success:
            return body.get("result")
        error_code = body.get("error_code")
        code = int(error_code) if type(error_code) is int else response.status_code
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else None
        raise TelegramError(method, code, str(body.get("description") or "error"), parameters)

    async def download(self, file_path: str, max_bytes: int) -> tuple[bytes, str | None]:
        """The bytes of a file getFile pointed at, and its Content-Type; at most `max_bytes`."""
        try:
            async with (
                self._slots,
                self._http.stream("GET", f"{self._files}/{file_path}", timeout=self._timeout) as response,
            ):
                if not response.is_success:
                    raise TelegramError("download", response.status_code, response.reason_phrase or "download failed")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise TelegramError("download", 413, f"file is larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("content-type")
        except httpx.TransportError as exc:
            raise NetworkError(f"download: {type(exc).__name__}") from None
