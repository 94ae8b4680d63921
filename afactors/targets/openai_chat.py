"""An agent backed by any OpenAI-compatible chat-completions endpoint, streamed over httpx."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from afactors._tracing import outgoing_headers
from afactors.model import TurnContext, Update, UsagePart


class UpstreamError(RuntimeError):
    """The model endpoint answered with an error or an unreadable stream."""


_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def wire_name(name: str | None) -> str | None:
    """A message's speaker as chat completions accepts it (`^[A-Za-z0-9_-]{1,64}$`), or None if nothing is left."""
    cleaned = _NOT_IN_NAME.sub("_", name or "").strip("_")[:64]
    return cleaned or None


def chat_messages(ctx: TurnContext) -> list[dict[str, str]]:
    """The chat-completions `messages` for a turn: instructions first, then the conversation (a user message
    with a speaker, `Message.name`, carries it as `name`)."""
    out: list[dict[str, str]] = []
    if instructions := ctx.options.get("instructions"):
        out.append({"role": "system", "content": str(instructions)})
    for m in ctx.messages:
        if m.role in ("user", "assistant", "system"):
            item = {"role": m.role, "content": m.text}
            if m.role == "user" and (name := wire_name(m.name)):
                item["name"] = name
            out.append(item)
    return out


def parse_sse_line(line: str) -> dict[str, Any] | None:
    """One `data:` line of a chat-completions stream as JSON; None for other lines and `[DONE]`."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    try:
        parsed: dict[str, Any] | None = orjson.loads(payload)
        return parsed
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"unreadable stream chunk: {payload[:80]!r}") from exc


class OpenAIChatAgent:
    """Streams each turn from `{base_url}/chat/completions` with the whole conversation as context."""

    def __init__(
        self, model: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float = 120.0
    ) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "")
        self.timeout = timeout

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        body = {
            "model": self.model,
            "messages": chat_messages(ctx),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        headers.update(outgoing_headers())  # the call joins the turn's trace (when traces are on)
        import httpx  # here, not at the top: a host serving another target starts without it (issue 16 startup)

        async with httpx.AsyncClient(timeout=self.timeout) as client:
            async with client.stream("POST", f"{self.base_url}/chat/completions", json=body, headers=headers) as resp:
                if resp.status_code >= 400:
                    detail = (await resp.aread()).decode(errors="replace")[:300]
                    raise UpstreamError(f"model endpoint answered {resp.status_code}: {detail}")
                async for line in resp.aiter_lines():
                    chunk = parse_sse_line(line)
                    if chunk is None:
                        continue
                    for choice in chunk.get("choices") or ():
                        if delta := (choice.get("delta") or {}).get("content"):
                            yield Update(delta=delta)
                    if usage := chunk.get("usage"):
                        yield Update(part=UsagePart(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))
