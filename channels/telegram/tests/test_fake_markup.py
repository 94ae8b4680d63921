"""Pure tests of the fake's formatted-text handling (parse modes, entities, detection)."""

import pytest

from afactors_telegram.testing.errors import ApiError
from afactors_telegram.testing.markup import (
    check_entities,
    detect_entities,
    format_text,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    utf16_len,
)


def _error(parse, text: str) -> str:
    with pytest.raises(ApiError) as caught:
        parse(text)
    assert caught.value.error_code == 400
    prefix = "Bad Request: can't parse entities: "
    assert caught.value.description.startswith(prefix)
    return caught.value.description[len(prefix) :]


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("🏟") == 2
    assert utf16_len("é") == 1


@pytest.mark.parametrize("char", list("]()>#+-=|{}.!"))
def test_markdown_v2_reserved_characters_must_be_escaped(char: str) -> None:
    expected = f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    assert _error(parse_markdown_v2, "a" + char) == expected
    assert parse_markdown_v2("a\\" + char) == ("a" + char, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("🏟 🏟_abacaba", "Can't find end of Italic entity at byte offset 9"),
        ("🏟 🏟_abac * asd ", "Can't find end of Bold entity at byte offset 15"),
        ("🏟 🏟_abac * asd _", "Can't find end of Italic entity at byte offset 21"),
        ("🏟 🏟`", "Can't find end of Code entity at byte offset 9"),
        ("🏟 🏟```", "Can't find end of Pre entity at byte offset 9"),
        ("🏟 🏟```a ", "Can't find end of PreCode entity at byte offset 9"),
        ("🏟 🏟__🏟 _🏟___", "Can't find end of Italic entity at byte offset 23"),
        ("🏟 🏟||test\\|", "Can't find end of Spoiler entity at byte offset 9"),
        ("[telegram\\.org](asd\\)", "Can't find end of a URL at byte offset 16"),
        ("🏟 🏟![👍]", "Custom emoji entity must contain a tg://emoji URL"),
    ],
)
def test_markdown_v2_unclosed_entities_name_the_entity_and_byte_offset(text: str, message: str) -> None:
    assert _error(parse_markdown_v2, text) == message


@pytest.mark.parametrize(
    ("text", "plain", "entities"),
    [
        ("*bold* _it_ __u__ ~s~ ||sp||", "bold it u s sp",
         [("bold", 0, 4), ("italic", 5, 2), ("underline", 8, 1), ("strikethrough", 10, 1), ("spoiler", 12, 2)]),
        ("🏟 🏟_🏟 *🏟*_", "🏟 🏟🏟 🏟", [("italic", 5, 5), ("bold", 8, 2)]),
        ("_* * ` `_", "   ", [("italic", 0, 3), ("bold", 0, 1), ("code", 2, 1)]),
        ("`a\\`b` x", "a`b x", [("code", 0, 3)]),
        ("abc\n> \n> \n>\ndef", "abc\n \n \n\ndef", [("blockquote", 4, 5)]),
        (">asd\n>q||e||w||\nasdad", "asd\nqew\nasdad", [("expandable_blockquote", 0, 8), ("spoiler", 5, 1)]),
        ("1\\.0 \\- ok\\!", "1.0 - ok!", []),
        ("🏟 🏟**", "🏟 🏟", []),
    ],
)  # fmt: skip
def test_markdown_v2_produces_plain_text_and_utf16_entities(text: str, plain: str, entities: list) -> None:
    result_text, result = parse_markdown_v2(text)
    assert result_text == plain
    assert [(e["type"], e["offset"], e["length"]) for e in result] == entities


def test_markdown_v2_pre_with_language_and_links() -> None:
    assert parse_markdown_v2("```python\nprint(1)\n```") == (
        "print(1)\n",
        [{"type": "pre", "offset": 0, "length": 9, "language": "python"}],
    )
    assert parse_markdown_v2("[site](https://example.com/a\\)b)") == (
        "site",
        [{"type": "text_link", "offset": 0, "length": 4, "url": "https://example.com/a)b"}],
    )
    assert parse_markdown_v2("![👍](tg://emoji?id=5368324170671202286)") == (
        "👍",
        [{"type": "custom_emoji", "offset": 0, "length": 2, "custom_emoji_id": "5368324170671202286"}],
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("line<br>next", 'Unsupported start tag "br" at byte offset 4'),
        ("</b>", "Unexpected end tag at byte offset 0"),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_errors_use_telegram_wording(text: str, message: str) -> None:
    assert _error(parse_html, text) == message


def test_html_tags_entities_and_character_references() -> None:
    text, entities = parse_html(
        "<b>b</b><strong>s</strong><i>i</i><u>u</u><s>x</s><tg-spoiler>p</tg-spoiler>"
        '<a href="https://t.me/x">l</a> &lt;&amp;&gt;&quot;&#65;&#x42;'
        '<pre><code class="language-py">c</code></pre><blockquote expandable>q</blockquote>'
    )
    assert text == 'bsiuxpl <&>"ABcq'
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("bold", 0, 1), ("bold", 1, 1), ("italic", 2, 1), ("underline", 3, 1), ("strikethrough", 4, 1),
        ("spoiler", 5, 1), ("text_link", 6, 1), ("pre", 14, 1), ("expandable_blockquote", 15, 1),
    ]  # fmt: skip
    assert entities[6]["url"] == "https://t.me/x"
    assert entities[7]["language"] == "py"


def test_legacy_markdown() -> None:
    assert parse_markdown("*b* _i_ `c` [l](http://x.org)") == (
        "b i c l",
        [
            {"type": "bold", "offset": 0, "length": 1},
            {"type": "italic", "offset": 2, "length": 1},
            {"type": "code", "offset": 4, "length": 1},
            {"type": "text_link", "offset": 6, "length": 1, "url": "http://x.org"},
        ],
    )
    assert _error(parse_markdown, "ab *cd") == "Can't find end of the entity starting at byte offset 3"


def test_detected_entities_commands_mentions_hashtags_urls() -> None:
    text = "/start@afactors_test_bot hi @someone #tag https://example.com/x. /new"
    assert [(e["type"], e["offset"], e["length"]) for e in detect_entities(text)] == [
        ("bot_command", 0, 24), ("mention", 28, 8), ("hashtag", 37, 4), ("url", 42, 21), ("bot_command", 65, 4),
    ]  # fmt: skip


def test_detection_skips_code_and_links() -> None:
    existing = [{"type": "code", "offset": 0, "length": 6}]
    assert detect_entities("/start", existing) == existing


def test_explicit_entities_are_clipped_to_the_text_and_validated() -> None:
    assert check_entities([{"type": "bold", "offset": 2, "length": 10}, {"type": "italic", "offset": 9, "length": 1}],
                          "abcd") == [{"type": "bold", "offset": 2, "length": 2}]  # fmt: skip
    for bad in ({"type": "sparkle", "offset": 0, "length": 1}, {"type": "bold", "offset": "0", "length": 1}, 5):
        with pytest.raises(ApiError):
            check_entities([bad], "abcd")
    with pytest.raises(ApiError):
        check_entities({"type": "bold"}, "abcd")


def test_format_text_prefers_explicit_entities_and_rejects_unknown_modes() -> None:
    assert format_text("*x*", "MarkdownV2", [{"type": "italic", "offset": 0, "length": 1}]) == (
        "*x*",
        [{"type": "italic", "offset": 0, "length": 1}],
    )
    with pytest.raises(ApiError, match="unsupported parse_mode"):
        format_text("x", "rtf", None)
