"""`decide` never raises, whatever JSON an update holds: property tests with hypothesis."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afactors_telegram.config import TelegramConfig
from afactors_telegram.inbound import BotInfo, ButtonPress, CommandRequest, Ignore, TurnRequest, decide

BOT = BotInfo(id=42, username="TestBot")
CONFIGS = [TelegramConfig(token="1:x", accept_in_group=policy) for policy in ("all", "mention_only", "command_only")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def anything_or(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly well-formed values, sometimes any JSON at all."""
    return st.one_of(strategy, json_values)


entity = st.fixed_dictionaries(
    {"type": anything_or(st.sampled_from(["bot_command", "mention", "text_mention", "bold"]))},
    optional={
        "offset": anything_or(st.integers(-5, 40)),
        "length": anything_or(st.integers(-5, 40)),
        "user": anything_or(st.fixed_dictionaries({"id": anything_or(st.just(42))})),
    },
)
photo = st.fixed_dictionaries({}, optional={"file_id": json_values, "file_size": json_values, "width": json_values})
message = st.fixed_dictionaries(
    {
        "message_id": anything_or(st.integers(1, 10)),
        "chat": anything_or(
            st.fixed_dictionaries(
                {
                    "id": anything_or(st.integers(-100, 100)),
                    "type": anything_or(st.sampled_from(["private", "group", "supergroup", "channel"])),
                }
            )
        ),
        "from": anything_or(
            st.fixed_dictionaries(
                {
                    "id": anything_or(st.integers(1, 100)),
                    "is_bot": json_values,
                    "first_name": json_values,
                }
            )
        ),
    },
    optional={
        "text": anything_or(st.text(max_size=30)),
        "caption": json_values,
        "entities": anything_or(st.lists(anything_or(entity), max_size=3)),
        "caption_entities": json_values,
        "photo": anything_or(st.lists(anything_or(photo), max_size=3)),
        "document": anything_or(st.fixed_dictionaries({"file_id": json_values, "mime_type": json_values})),
        "voice": json_values,
        "reply_to_message": anything_or(st.fixed_dictionaries({"from": json_values, "message_id": json_values})),
        "is_topic_message": json_values,
        "message_thread_id": json_values,
    },
)
callback_query = st.fixed_dictionaries(
    {"id": anything_or(st.text(min_size=1, max_size=5))},
    optional={
        "from": anything_or(st.fixed_dictionaries({"id": anything_or(st.integers(1, 100)), "is_bot": json_values})),
        "message": anything_or(message),
        "data": anything_or(st.text(max_size=10)),
        "inline_message_id": json_values,
    },
)
update = st.fixed_dictionaries(
    {"update_id": anything_or(st.integers(0, 10**9))},
    optional={
        "message": anything_or(message),
        "edited_message": anything_or(message),
        "callback_query": anything_or(callback_query),
        "my_chat_member": json_values,
    },
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(update=anything_or(update), config=st.sampled_from(CONFIGS))
def test_decide_never_raises_on_any_update(update: Any, config: TelegramConfig) -> None:
    if not isinstance(update, dict):
        update = {"update": update}
    decision = decide(update, BOT, config)
    assert isinstance(decision, (Ignore, CommandRequest, TurnRequest, ButtonPress))


def test_a_photo_that_is_not_a_list_is_ignored_not_raised() -> None:
    update = {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"},
                                          "from": {"id": 7}, "photo": 5}}  # fmt: skip
    assert decide(update, BOT, CONFIGS[0]) == Ignore("no text or media")
