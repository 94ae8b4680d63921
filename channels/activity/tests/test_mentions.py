"""@mention detection and stripping (B-05)."""

from __future__ import annotations

from afactors_activity.mentions import mentions_bot, strip_bot_mentions

BOT = "28:bot"
MENTION = {"type": "mention", "mentioned": {"id": BOT, "name": "Helper"}, "text": "<at>Helper</at>"}
OTHER = {"type": "mention", "mentioned": {"id": "29:alice", "name": "Alice"}, "text": "<at>Alice</at>"}


def test_only_a_mention_entity_naming_the_bot_counts() -> None:
    assert mentions_bot([MENTION], BOT)
    assert mentions_bot([OTHER, MENTION], BOT)
    assert not mentions_bot([OTHER], BOT)
    assert not mentions_bot([], BOT)
    assert not mentions_bot([{"type": "clientInfo", "mentioned": {"id": BOT}}], BOT)
    assert not mentions_bot([{"type": "mention", "mentioned": "28:bot"}], BOT)


def test_the_bots_mention_is_stripped_wherever_it_is() -> None:
    assert strip_bot_mentions("<at>Helper</at> what time is it?", [MENTION], BOT) == "what time is it?"
    assert strip_bot_mentions("what time is it <at>Helper</at>", [MENTION], BOT) == "what time is it"
    assert strip_bot_mentions("ask <at>Helper</at> now", [MENTION], BOT) == "ask now"


def test_other_mentions_become_plain_names() -> None:
    text = "<at>Helper</at> say hi to <at>Alice</at>"
    assert strip_bot_mentions(text, [MENTION, OTHER], BOT) == "say hi to Alice"


def test_text_without_entities_keeps_names_but_loses_tags() -> None:
    assert strip_bot_mentions("<at>Helper</at> hi", [], BOT) == "Helper hi"
    assert strip_bot_mentions('<AT id="0">Helper</AT> hi', [], BOT) == "Helper hi"
    assert strip_bot_mentions("plain text", [MENTION], BOT) == "plain text"
