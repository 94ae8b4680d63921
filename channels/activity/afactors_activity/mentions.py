"""@mentions (pure): whether a message mentions the bot, and its text with the bot's mention taken out (B-05).

Teams puts a mention in the text as `<at>Name</at>` and describes it with an entity
`{"type": "mention", "mentioned": {"id": ...}, "text": "<at>Name</at>"}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_AT_TAG = re.compile(r"<at(?:\s[^>]*)?>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"[ \t]{2,}")


def _bot_mentions(entities: Iterable[Mapping[str, Any]], bot_id: str) -> list[Mapping[str, Any]]:
    found = []
    for entity in entities:
        mentioned = entity.get("mentioned")
        if entity.get("type") == "mention" and isinstance(mentioned, Mapping) and mentioned.get("id") == bot_id:
            found.append(entity)
    return found


def mentions_bot(entities: Iterable[Mapping[str, Any]], bot_id: str) -> bool:
    """Whether a `mention` entity names the bot (by id; a name in the text alone does not count)."""
    return bool(_bot_mentions(entities, bot_id))


def strip_bot_mentions(text: str, entities: Iterable[Mapping[str, Any]], bot_id: str) -> str:
    """`text` without the bot's own mentions; other people's `<at>Name</at>` become plain `Name`."""
    for entity in _bot_mentions(entities, bot_id):
        mention_text = entity.get("text")
        if isinstance(mention_text, str) and mention_text:
            text = text.replace(mention_text, " ")
    text = _AT_TAG.sub(lambda match: match.group(1), text)
    return _SPACES.sub(" ", text).strip()
