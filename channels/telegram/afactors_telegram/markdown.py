"""The Markdown agents write, rendered as Telegram HTML (`parse_mode="HTML"`), and split into messages (pure).

Handled: fenced code blocks, `inline code`, **bold**/__bold__, *italic*/_italic_, ~~strike~~, [links](url)
and # headings (bold). Everything else is text, HTML-escaped. Emphasis never spans lines. When Telegram
still rejects the result ("can't parse entities"), the sender falls back to the Markdown source as plain text.
"""

from __future__ import annotations

import html
import re

from afactors_telegram.text import MAX_MESSAGE, split_text

_FENCE = re.compile(r"^ {0,3}```\s*([\w+#.-]{0,20})")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?|tg|mailto):[^)\s]+)\)")
_EMPHASIS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![\w*])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])"), "b"),
    (re.compile(r"(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])"), "b"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), "s"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), "i"),
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), "i"),
)
_SLOT = re.compile("\ue000(\\d+)\ue001")
_FENCE_RESERVE = 32  # room for the "```lang" / "```" lines a split code block gets on each side


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _inline(line: str) -> str:
    """One line of prose: code spans and links first (their contents are not emphasised), then emphasis."""
    slots: list[str] = []

    def keep(rendered: str) -> str:
        slots.append(rendered)
        return f"\ue000{len(slots) - 1}\ue001"

    line = _INLINE_CODE.sub(lambda m: keep(f"<code>{_escape(m.group(1))}</code>"), line)
    line = _LINK.sub(lambda m: keep(f'<a href="{html.escape(m.group(2))}">{_escape(m.group(1))}</a>'), line)
    line = _escape(line)
    for pattern, tag in _EMPHASIS:
        line = pattern.sub(lambda m, tag=tag: f"<{tag}>{m.group(1)}</{tag}>", line)  # type: ignore[misc]
    return _SLOT.sub(lambda m: slots[int(m.group(1))], line)


def _prose(line: str) -> str:
    heading = _HEADING.match(line)
    return f"<b>{_inline(heading.group(1))}</b>" if heading else _inline(line)


def _code_block(lines: list[str], language: str) -> str:
    body = _escape("\n".join(lines))
    if language:
        return f'<pre><code class="language-{language}">{body}</code></pre>'
    return f"<pre>{body}</pre>"


def to_html(markdown: str) -> str:
    """Telegram HTML for `markdown`; an unclosed code fence runs to the end."""
    out: list[str] = []
    code: list[str] | None = None
    language = ""
    for line in markdown.split("\n"):
        fence = _FENCE.match(line)
        if code is None and fence:
            code, language = [], fence.group(1)
        elif code is not None and line.strip() == "```":
            out.append(_code_block(code, language))
            code = None
        elif code is not None:
            code.append(line)
        else:
            out.append(_prose(line))
    if code is not None:
        out.append(_code_block(code, language))
    return "\n".join(out)


def _fence_state(chunk: str, open_language: str | None) -> str | None:
    """The language of the code fence still open after `chunk` ("" for none given), or None if closed."""
    for line in chunk.split("\n"):
        fence = _FENCE.match(line)
        if not fence:
            continue
        if open_language is None:
            open_language = fence.group(1)
        elif line.strip() == "```":
            open_language = None
    return open_language


def split_markdown(markdown: str, limit: int = MAX_MESSAGE) -> list[str]:
    """`split_text` for Markdown: a code block cut in two is closed and reopened, so both halves render."""
    chunks = split_text(markdown, limit - _FENCE_RESERVE)
    balanced: list[str] = []
    open_language: str | None = None
    for chunk in chunks:
        prefix = "" if open_language is None else f"```{open_language}\n"
        open_language = _fence_state(chunk, open_language)
        suffix = "" if open_language is None else "\n```"
        balanced.append(prefix + chunk + suffix)
    return balanced
