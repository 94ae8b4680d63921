"""A raw Streamable HTTP client for wire-level tests: exact headers, bodies and SSE events."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson

ACCEPT_BOTH = "application/json, text/event-stream"

Serve = Callable[..., AbstractAsyncContextManager[str]]
"""The `serve` fixture: `async with serve(config=..., **open_host_kwargs) as url:`."""


def events(text: str) -> list[dict[str, str]]:
    """The SSE events of a finished stream body: each as its fields (`id`, `data`, `retry`, `event`)."""
    parsed = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if fields:
            parsed.append(fields)
    return parsed


def messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a finished SSE body, in order (the priming event carries none)."""
    return [orjson.loads(event["data"]) for event in events(text) if event.get("data")]


class Wire:
    """POST/GET/DELETE against one MCP endpoint, remembering the session once initialized."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.session: str | None = None
        self.ids = iter(range(1, 1_000_000))

    def headers(self, **extra: str | None) -> dict[str, str]:
        base = {"accept": ACCEPT_BOTH, "content-type": "application/json", "mcp-protocol-version": "2025-11-25"}
        if self.session is not None:
            base["mcp-session-id"] = self.session
        merged = {**base, **{name.replace("_", "-"): value for name, value in extra.items()}}
        return {name: value for name, value in merged.items() if value is not None}

    async def post(self, body: object, **headers: str | None) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.http.post(self.url, content=content, headers=self.headers(**headers))

    async def request(self, method: str, params: dict[str, Any] | None = None, **headers: str | None) -> httpx.Response:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self.ids), "method": method}
        if params is not None:
            body["params"] = params
        return await self.post(body, **headers)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return await self.post({"jsonrpc": "2.0", "method": method, "params": params or {}})

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "wire", "version": "1"}}
        response = await self.request("initialize", params)
        assert response.status_code == 200, response.text
        self.session = response.headers["mcp-session-id"]
        assert (await self.notify("notifications/initialized")).status_code == 202
        return orjson.loads(response.content)["result"]

    async def call(self, prompt: str, **arguments: Any) -> httpx.Response:
        params: dict[str, Any] = {"name": "ask_agent", "arguments": {"prompt": prompt, **arguments}}
        return await self.request("tools/call", params)
