"""What a finished reply becomes on Telegram: text messages (split, formatted) and photos (pure)."""

from __future__ import annotations

from typing import Literal

import attrs

from afactors.model import DataPart, Message, Reply, UriPart
from afactors_telegram.markdown import split_markdown, to_html
from afactors_telegram.text import split_text

NO_RESPONSE = "(no response)"
ECHO_PREFIX = "You wrote:\n"
CANCELLED = "(the answer was cancelled)"


@attrs.frozen
class TextOut:
    """One text message: `html` to send with parse_mode HTML, `text` as the plain-text fallback."""

    text: str
    html: str | None = None


@attrs.frozen
class PhotoOut:
    """One image: uploaded bytes, or a URL Telegram fetches itself."""

    data: bytes | None = None
    url: str | None = None
    media_type: str = "image/jpeg"
    name: str = "image"


Outgoing = TextOut | PhotoOut


def failure_text(code: str) -> str:
    """What a user sees when a turn failed: no internals, just the error code."""
    return f"Sorry, I could not answer that (error: {code}). Please try again."


def text_messages(text: str, formatting: Literal["markdown", "plain"]) -> list[TextOut]:
    """`text` split into messages; with "markdown" each carries its HTML rendering."""
    if formatting == "plain":
        return [TextOut(chunk) for chunk in split_text(text)]
    return [TextOut(chunk, to_html(chunk)) for chunk in split_markdown(text)]


def _photos(reply: Reply) -> list[PhotoOut]:
    photos: list[PhotoOut] = []
    for message in reply.messages:
        if message.role != "assistant":
            continue
        for part in message.contents:
            if isinstance(part, DataPart) and part.media_type.startswith("image/"):
                photos.append(PhotoOut(data=part.data, media_type=part.media_type, name=part.name or "image"))
            elif (
                isinstance(part, UriPart)
                and part.media_type.startswith("image/")
                and part.uri.startswith(("https://", "http://"))
            ):
                photos.append(PhotoOut(url=part.uri, media_type=part.media_type, name=part.name or "image"))
    return photos


def plan_reply(reply: Reply, formatting: Literal["markdown", "plain"]) -> list[Outgoing]:
    """The messages a reply is sent as, in order: its text (split at 4096), then its images."""
    if reply.status == "failed":
        return [TextOut(failure_text(reply.error.code if reply.error else "failed"))]
    if reply.status == "cancelled":
        return [TextOut(CANCELLED)]
    out: list[Outgoing] = [*text_messages(reply.text, formatting), *_photos(reply)]
    return out or [TextOut(NO_RESPONSE)]


def plan_echo(echo: tuple[Message, ...]) -> list[Outgoing]:
    """The user's input shown before a reply pushed to another channel (`echo_input`): plain text (what a user
    typed is never parsed as formatting), prefixed so it does not read as the bot's own words."""
    text = "\n\n".join(m.text for m in echo if m.text.strip())
    return [TextOut(chunk) for chunk in split_text(ECHO_PREFIX + text)] if text else []
