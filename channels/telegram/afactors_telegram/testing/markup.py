"""Formatted text as Telegram handles it: ``parse_mode`` parsing, explicit entities, auto-detected entities.

Pure functions. Every parser returns ``(plain_text, entities)`` where entities are Bot API MessageEntity
dicts with offsets and lengths in UTF-16 code units, or raises :class:`ApiError` with Telegram's
``can't parse entities: ...`` wording (error offsets are UTF-8 byte offsets into the input, as Telegram's).
The parsers follow Telegram's documented syntax closely but are not a byte-for-byte copy of its rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from afactors_telegram.testing.errors import ApiError, bad_request, parse_error

Entity = dict[str, Any]
Parsed = tuple[str, list[Entity]]

ENTITY_TYPES = frozenset(
    {
        "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold", "italic",
        "underline", "strikethrough", "spoiler", "blockquote", "expandable_blockquote", "code", "pre",
        "text_link", "text_mention", "custom_emoji",
    }
)  # fmt: skip


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


def _sorted(entities: list[Entity]) -> list[Entity]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


class _Builder:
    """Plain-text output plus a stack of open entities; shared by the three parsers."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.out: list[str] = []
        self.pos = 0  # UTF-16 offset of the next output character
        self.entities: list[Entity] = []
        self.stack: list[dict[str, Any]] = []

    def emit(self, text: str) -> None:
        self.out.append(text)
        self.pos += utf16_len(text)

    def open(self, kind: str, index: int, **extra: Any) -> None:
        self.stack.append({"type": kind, "start": self.pos, "index": index, **extra})

    def close(self) -> dict[str, Any]:
        item = self.stack.pop()
        self.add(item["type"], item["start"], **item.get("attrs", {}))
        return item

    def add(self, kind: str, start: int, **attrs: Any) -> None:
        if self.pos > start:
            self.entities.append({"type": kind, "offset": start, "length": self.pos - start, **attrs})

    def result(self) -> Parsed:
        return "".join(self.out), _sorted(self.entities)


# ---------------------------------------------------------------------------------------------- MarkdownV2

_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
    "spoiler": "Spoiler", "code": "Code", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
}  # fmt: skip


def _reserved(char: str) -> ApiError:
    return parse_error(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def _link_url(raw: str) -> str | None:
    """Telegram keeps only URLs it understands; a bare host gets ``http://``."""
    if not raw or any(c.isspace() for c in raw):
        return None
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", raw):
        return raw
    return f"http://{raw}" if "." in raw else None


def _read_until(src: str, start: int, closer: str) -> tuple[str, int] | None:
    """Read an escaped span up to ``closer``; returns (text, index after closer) or None."""
    chars: list[str] = []
    i = start
    while i < len(src):
        if src[i] == "\\" and i + 1 < len(src):
            chars.append(src[i + 1])
            i += 2
        elif src[i] == closer:
            return "".join(chars), i + 1
        else:
            chars.append(src[i])
            i += 1
    return None


def parse_markdown_v2(src: str) -> Parsed:
    """Parse ``parse_mode=MarkdownV2`` text."""
    b = _Builder(src)
    n = len(src)
    i = 0
    line_start = True
    quote: dict[str, Any] | None = None

    def end_quote() -> None:
        nonlocal quote
        if quote is not None:
            b.add("expandable_blockquote" if quote["expandable"] else "blockquote", quote["start"])
            quote = None

    while i < n:
        c = src[i]
        top = b.stack[-1]["type"] if b.stack else None
        if top in ("code", "pre"):
            if c == "\\" and i + 1 < n and 0 < ord(src[i + 1]) < 127:
                b.emit(src[i + 1])
                i += 2
            elif top == "code" and c == "`":
                b.close()
                i += 1
            elif top == "pre" and src.startswith("```", i):
                b.close()
                i += 3
            else:
                b.emit(c)
                i += 1
            continue
        if line_start:
            line_start = False
            if src.startswith("**>", i):
                end_quote()
                quote = {"start": b.pos, "expandable": False}
                i += 3
                continue
            if c == ">":
                if quote is None:
                    quote = {"start": b.pos, "expandable": False}
                i += 1
                continue
            end_quote()
        if c == "\\" and i + 1 < n and 0 < ord(src[i + 1]) < 127:
            b.emit(src[i + 1])
            i += 2
        elif c in "\r\n":
            b.emit(c)
            line_start = True
            i += 1
        elif src.startswith("```", i):
            opened_at = i
            i += 3
            j = i
            while j < n and not src[j].isspace() and src[j] != "`":
                j += 1
            language = src[i:j] if j < n and j > i and src[j].isspace() else ""
            if language:
                i = j
                for brk in ("\r\n", "\n\r", "\n", "\r"):
                    if src.startswith(brk, i):
                        i += len(brk)
                        break
            attrs = {"language": language} if language else {}
            b.open("pre", opened_at, attrs=attrs)
        elif c == "`":
            b.open("code", i)
            i += 1
        elif c in "*~" or c == "_" or src.startswith("||", i):
            if src.startswith("||", i):
                kind, width = "spoiler", 2
                at_line_end = i + 2 >= n or src[i + 2] in "\r\n"
                if quote is not None and top != "spoiler" and at_line_end:
                    quote["expandable"] = True
                    i += 2
                    continue
            elif src.startswith("__", i):
                kind, width = "underline", 2
            else:
                kind, width = {"*": "bold", "_": "italic", "~": "strikethrough"}[c], 1
            if top == kind:
                b.close()
            else:
                b.open(kind, i)
            i += width
        elif c == "[" or src.startswith("![", i):
            kind = "text_link" if c == "[" else "custom_emoji"
            b.open(kind, i)
            i += 1 if c == "[" else 2
        elif c == "]" and top in ("text_link", "custom_emoji"):
            item = b.stack.pop()
            i += 1
            url: str | None = None
            if i < n and src[i] == "(":
                read = _read_until(src, i + 1, ")")
                if read is None:
                    what = "a custom emoji URL" if top == "custom_emoji" else "a URL"
                    raise parse_error(f"Can't find end of {what} at byte offset {_byte_offset(src, i + 1)}")
                url, i = read
            if top == "custom_emoji":
                match = re.match(r"^tg://emoji\?id=([0-9]+)$", url or "", re.IGNORECASE)
                if url is None:
                    raise parse_error("Custom emoji entity must contain a tg://emoji URL")
                if match is None:
                    raise parse_error("Custom emoji URL must have an emoji identifier")
                b.add("custom_emoji", item["start"], custom_emoji_id=match.group(1))
            else:
                text = _text_since(b, item["start"])
                target = _link_url(url if url is not None else text)
                if target is not None:
                    b.add("text_link", item["start"], url=target)
        elif c in _V2_RESERVED:
            raise _reserved(c)
        else:
            b.emit(c)
            i += 1
    if b.stack:
        item = b.stack[-1]
        name = _V2_NAMES.get(item["type"]) or ("PreCode" if item.get("attrs") else "Pre")
        raise parse_error(f"Can't find end of {name} entity at byte offset {_byte_offset(src, item['index'])}")
    end_quote()
    return b.result()


def _text_since(b: _Builder, start16: int) -> str:
    text = "".join(b.out)
    encoded = text.encode("utf-16-le")
    return encoded[start16 * 2 :].decode("utf-16-le")


# ---------------------------------------------------------------------------------------------------- HTML

_HTML_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}  # fmt: skip
_HTML_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME = re.compile(r"[a-zA-Z0-9-]*")
_ATTRIBUTE = re.compile(r"\s*([a-zA-Z0-9_-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


def _html_char(ref: str) -> str:
    if ref in _NAMED:
        return _NAMED[ref]
    code = int(ref[2:], 16) if ref.startswith("#x") else int(ref[1:])
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else ""


def parse_html(src: str) -> Parsed:
    """Parse ``parse_mode=HTML`` text (Telegram's tag subset)."""
    b = _Builder(src)
    n = len(src)
    i = 0
    while i < n:
        c = src[i]
        if c == "&":
            match = _HTML_ENTITY.match(src, i)
            if match:
                b.emit(_html_char(match.group(1)))
                i = match.end()
                continue
            b.emit(c)
            i += 1
        elif c == "<" and i + 1 < n and src[i + 1] == "/":
            name = _TAG_NAME.match(src, i + 2).group(0).lower()  # type: ignore[union-attr]
            j = i + 2 + len(name)
            while j < n and src[j].isspace():
                j += 1
            if j >= n or src[j] != ">":
                raise parse_error(f"Unclosed end tag at byte offset {_byte_offset(src, i)}")
            if not b.stack:
                raise parse_error(f"Unexpected end tag at byte offset {_byte_offset(src, i)}")
            expected = b.stack[-1]["tag"]
            if name != expected:
                raise parse_error(
                    f'Unmatched end tag at byte offset {_byte_offset(src, i)}, expected "</{expected}>", '
                    f'found "</{name}>"'
                )
            _close_html(b)
            i = j + 1
        elif c == "<":
            i = _open_html(b, i)
        else:
            b.emit(c)
            i += 1
    if b.stack:
        raise parse_error(f'Can\'t find end tag corresponding to start tag "{b.stack[-1]["tag"]}"')
    return b.result()


def _open_html(b: _Builder, i: int) -> int:
    src = b.src
    name_raw = _TAG_NAME.match(src, i + 1).group(0)  # type: ignore[union-attr]
    name = name_raw.lower()
    if name not in _HTML_TAGS:
        raise parse_error(f'Unsupported start tag "{name_raw}" at byte offset {_byte_offset(src, i)}')
    j = i + 1 + len(name_raw)
    attributes: dict[str, str] = {}
    while True:
        while j < len(src) and src[j].isspace():
            j += 1
        if j >= len(src):
            raise parse_error(f"Unclosed start tag at byte offset {_byte_offset(src, i)}")
        if src[j] == ">":
            break
        if src.startswith("/>", j):
            j += 1
            break
        match = _ATTRIBUTE.match(src, j)
        if match is None:
            raise parse_error(f"Unclosed start tag at byte offset {_byte_offset(src, i)}")
        value = match.group(2) or ""
        if value[:1] in "\"'" and value:
            value = value[1:-1]
        attributes[match.group(1).lower()] = _HTML_ENTITY.sub(lambda m: _html_char(m.group(1)), value)
        j = match.end()
    kind = _HTML_TAGS[name]
    attrs: dict[str, Any] = {}
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise parse_error(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, i)}')
    if kind == "text_link":
        url = _link_url(attributes.get("href", ""))
        attrs = {"url": url} if url else {}
    elif kind == "custom_emoji":
        emoji_id = attributes.get("emoji-id", "")
        if not emoji_id.isdigit():
            raise parse_error("Custom emoji entity must contain a valid custom emoji identifier")
        attrs = {"custom_emoji_id": emoji_id}
    elif kind == "blockquote" and "expandable" in attributes:
        kind = "expandable_blockquote"
    elif kind == "code" and attributes.get("class", "").startswith("language-"):
        attrs = {"language": attributes["class"][len("language-") :]}
    b.stack.append({"type": kind, "tag": name, "start": b.pos, "index": i, "attrs": attrs})
    return j + 1


def _close_html(b: _Builder) -> None:
    item = b.stack[-1]
    parent = b.stack[-2] if len(b.stack) > 1 else None
    if item["type"] == "code" and parent is not None and parent["type"] == "pre":
        b.stack.pop()
        if "language" in item["attrs"]:
            parent["attrs"]["language"] = item["attrs"]["language"]
        return
    if item["type"] == "text_link" and "url" not in item["attrs"]:
        b.stack.pop()
        return
    if item["type"] == "code":
        item["attrs"] = {}
    b.close()


# ------------------------------------------------------------------------------------------ legacy Markdown

_V1_KINDS = {"*": "bold", "_": "italic", "`": "code"}


def parse_markdown(src: str) -> Parsed:
    """Parse legacy ``parse_mode=Markdown`` text (no nesting)."""
    b = _Builder(src)
    n = len(src)
    i = 0
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            b.emit(src[i + 1])
            i += 2
        elif src.startswith("```", i):
            end = src.find("```", i + 3)
            if end < 0:
                raise _v1_unclosed(src, i)
            body = src[i + 3 : end]
            language, newline, rest = body.partition("\n")
            attrs: dict[str, Any] = {}
            if newline and language and not any(ch.isspace() for ch in language):
                attrs, body = {"language": language}, rest
            start = b.pos
            b.emit(body)
            b.add("pre", start, **attrs)
            i = end + 3
        elif c in _V1_KINDS:
            end = src.find(c, i + 1)
            if end < 0:
                raise _v1_unclosed(src, i)
            start = b.pos
            b.emit(src[i + 1 : end])
            b.add(_V1_KINDS[c], start)
            i = end + 1
        elif c == "[":
            close = src.find("]", i + 1)
            if close < 0:
                raise _v1_unclosed(src, i)
            start = b.pos
            b.emit(src[i + 1 : close])
            i = close + 1
            if i < n and src[i] == "(":
                end = src.find(")", i + 1)
                if end < 0:
                    raise _v1_unclosed(src, i)
                url = _link_url(src[i + 1 : end])
                if url:
                    b.add("text_link", start, url=url)
                i = end + 1
        else:
            b.emit(c)
            i += 1
    return b.result()


def _v1_unclosed(src: str, index: int) -> ApiError:
    return parse_error(f"Can't find end of the entity starting at byte offset {_byte_offset(src, index)}")


PARSERS: dict[str, Callable[[str], Parsed]] = {
    "markdownv2": parse_markdown_v2,
    "html": parse_html,
    "markdown": parse_markdown,
}


# ---------------------------------------------------------------------------------- entities and detection

_AUTO = re.compile(
    r"(?P<bot_command>(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w@]))"
    r"|(?P<mention>(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}(?!\w))"
    r"|(?P<hashtag>(?<![\w#])#\w*[^\W\d]\w*)"
    r"|(?P<url>https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'])"
)
_NOT_OVER = frozenset({"code", "pre", "text_link", "text_mention", "custom_emoji"})


def detect_entities(text: str, existing: Sequence[Entity] = ()) -> list[Entity]:
    """Entities Telegram finds by itself: commands, @mentions, hashtags, URLs.

    A detected entity is dropped where it overlaps code, pre or a link already present.
    """
    found: list[Entity] = []
    blocked = [(e["offset"], e["offset"] + e["length"]) for e in existing if e["type"] in _NOT_OVER]
    for match in _AUTO.finditer(text):
        offset = utf16_len(text[: match.start()])
        length = utf16_len(match.group(0))
        if any(offset < end and start < offset + length for start, end in blocked):
            continue
        found.append({"type": match.lastgroup, "offset": offset, "length": length})
    return _sorted([*existing, *found])


def check_entities(raw: Any, text: str) -> list[Entity]:
    """Validate explicit ``entities``/``caption_entities``; clip them to the text like Telegram does."""
    if not isinstance(raw, list):
        raise bad_request("can't parse entities JSON object")
    size = utf16_len(text)
    clipped: list[Entity] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise bad_request(f"can't parse MessageEntity at index {index}")  # [?] our wording
        kind, offset, length = item.get("type"), item.get("offset"), item.get("length")
        if kind not in ENTITY_TYPES or type(offset) is not int or type(length) is not int:
            raise bad_request(f"can't parse MessageEntity at index {index}")  # [?] our wording
        if kind == "text_link" and not _link_url(str(item.get("url", ""))):
            raise bad_request("can't parse entities: wrong HTTP URL")  # [?] our wording
        end = min(offset + length, size)
        if offset < 0 or length <= 0 or offset >= end:
            continue
        clipped.append({**item, "offset": offset, "length": end - offset})
    return _sorted(clipped)


def format_text(text: str, parse_mode: str | None, entities: Any) -> Parsed:
    """Apply ``parse_mode`` or explicit ``entities`` (never both), then auto-detection."""
    if parse_mode and entities is None:
        parser = PARSERS.get(parse_mode.lower())
        if parser is None:
            raise bad_request("unsupported parse_mode")
        plain, found = parser(text)
    elif entities is not None:
        plain, found = text, check_entities(entities, text)
    else:
        plain, found = text, []
    return plain, detect_entities(plain, found)
