"""Text measured the way Telegram measures it (UTF-16 code units), and splitting long replies (pure)."""

from __future__ import annotations

MAX_MESSAGE = 4096
"""The longest text one message may have, in UTF-16 code units after entity parsing (T-11)."""

_SEPARATORS = ("\n\n", "\n", " ")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's limits and entity offsets."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def utf16_slice(text: str, offset: int, length: int | None = None) -> str:
    """The part of `text` an entity with UTF-16 `offset` and `length` covers (`None`: to the end)."""
    encoded = text.encode("utf-16-le")
    end = len(encoded) if length is None else 2 * (offset + length)
    return encoded[2 * offset : end].decode("utf-16-le", errors="replace")


def _fitting(text: str, limit: int) -> int:
    """How many code points of `text` fit in `limit` UTF-16 units."""
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to at most `limit` UTF-16 units, ending in "…" when it was cut (live previews)."""
    if utf16_len(text) <= limit:
        return text
    return text[: _fitting(text, limit - 1)] + "…"


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Cut `text` into chunks of at most `limit` UTF-16 units, none empty or blank.

    A cut goes at the last paragraph break, else line break, else space, in the second half of the chunk;
    failing all three it falls where the limit is. The separator at a cut is dropped; all other text,
    indentation included, is kept.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    chunks: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        fit = _fitting(rest, limit)
        cut, skip = fit, 0
        for separator in _SEPARATORS:
            found = rest.rfind(separator, fit // 2, fit)
            if found > 0:
                cut, skip = found, len(separator)
                break
        chunks.append(rest[:cut])
        rest = rest[cut + skip :]
    chunks.append(rest)
    return [chunk for chunk in chunks if chunk.strip()]
