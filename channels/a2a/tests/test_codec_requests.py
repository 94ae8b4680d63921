"""Params of every operation (A-04, A-11..A-14, push configs), v1 and rewritten from v0.3: pure parsing."""

from __future__ import annotations

import pytest

from afactors.model import TextPart
from afactors_a2a.errors import RpcError
from afactors_a2a.fields import Fields
from afactors_a2a.requests import (
    ListQuery,
    PushConfig,
    PushRef,
    TaskQuery,
    params_from_v03,
    parse_list,
    parse_push_config,
    parse_push_ref,
    parse_send,
    parse_task_query,
)

MODES = ("text/plain",)
MESSAGE = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}


def refused(fn, *args, **kwargs) -> RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(RpcError) as caught:
        fn(*args, **kwargs)
    return caught.value


def test_a04_send_with_and_without_configuration() -> None:
    plain = parse_send({"message": MESSAGE}, MODES, "new", "1.0")
    assert plain.message.parts == (TextPart("hi"),) and not plain.return_immediately and plain.push is None
    configured = parse_send(
        {
            "message": MESSAGE,
            "metadata": {"a": 1},
            "configuration": {
                "acceptedOutputModes": ["text/plain"],
                "historyLength": 2,
                "returnImmediately": True,
                "taskPushNotificationConfig": {
                    "url": "http://127.0.0.1:9/hook",
                    "token": "tok",
                    "authentication": {"scheme": "Bearer", "credentials": "c"},
                },
            },
        },
        MODES,
        "new",
        "1.0",
    )
    assert configured.accepted_output_modes == ("text/plain",) and configured.history_length == 2
    assert configured.return_immediately and configured.metadata == {"a": 1}
    assert configured.push == PushConfig("", "new", "http://127.0.0.1:9/hook", "tok", "Bearer", "c", "1.0")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"message": "hi"},
        {"message": MESSAGE, "configuration": {"historyLength": -1}},
        {"message": MESSAGE, "configuration": {"historyLength": "x"}},
        {"message": MESSAGE, "configuration": {"returnImmediately": "yes"}},
        {"message": MESSAGE, "configuration": {"acceptedOutputModes": "text/plain"}},
        {"message": MESSAGE, "configuration": {"taskPushNotificationConfig": {"url": "ftp://x"}}},
        {"message": MESSAGE, "configuration": {"taskPushNotificationConfig": {"url": "/relative"}}},
        {
            "message": MESSAGE,
            "configuration": {"taskPushNotificationConfig": {"url": "http://x", "authentication": {}}},
        },
        {"message": MESSAGE, "metadata": [1]},
    ],
)
def test_a04_bad_send_params_are_invalid_params(params: dict) -> None:
    assert refused(parse_send, params, MODES, "new", "1.0").code == -32602


def test_a11_task_queries() -> None:
    assert parse_task_query({"id": "t", "historyLength": 0}) == TaskQuery("t", 0)
    assert parse_task_query({"id": "t", "historyLength": "3"}) == TaskQuery("t", 3)  # proto-JSON int64 as string
    for bad in ({}, {"id": ""}, {"id": 5}, {"id": "t", "historyLength": -2}, {"id": "x" * 201}):
        assert refused(parse_task_query, bad).code == -32602


def test_a14_list_queries_default_and_bounds() -> None:
    assert parse_list({}) == ListQuery()
    query = parse_list(
        {
            "contextId": "c",
            "status": "TASK_STATE_WORKING",
            "pageSize": 100,
            "pageToken": "abc",
            "historyLength": 1,
            "includeArtifacts": True,
            "statusTimestampAfter": "2026-01-01T00:00:00Z",
        }
    )
    assert (query.context_id, query.state, query.page_size, query.page_token) == ("c", "TASK_STATE_WORKING", 100, "abc")
    assert query.include_artifacts and query.history_length == 1 and query.status_after == 1767225600.0
    for bad in (
        {"pageSize": 0},
        {"pageSize": 101},
        {"status": "working"},
        {"statusTimestampAfter": "yesterday"},
        {"includeArtifacts": 1},
    ):
        assert refused(parse_list, bad).code == -32602


def test_push_configs_and_references() -> None:
    config = parse_push_config(Fields({"taskId": "t", "url": "https://h/x", "id": "p"}, ""), None, "new", "0.3")
    assert config == PushConfig("t", "p", "https://h/x", version="0.3")
    assert config.render() == {"taskId": "t", "id": "p", "url": "https://h/x"}
    assert config.render_v03() == {"taskId": "t", "pushNotificationConfig": {"id": "p", "url": "https://h/x"}}
    full = PushConfig("t", "p", "https://h/x", "tok", "Basic", "c")
    assert full.render()["authentication"] == {"scheme": "Basic", "credentials": "c"}
    assert full.render_v03()["pushNotificationConfig"]["authentication"] == {"schemes": ["Basic"], "credentials": "c"}
    assert parse_push_ref({"taskId": "t", "id": "p"}, needs_id=True) == PushRef("t", "p")
    assert parse_push_ref({"taskId": "t"}, needs_id=False) == PushRef("t")
    assert refused(parse_push_ref, {"taskId": "t"}, needs_id=True).code == -32602
    assert refused(parse_push_ref, {"id": "p"}, needs_id=False).code == -32602


def test_v03_send_params_become_v1() -> None:
    v03 = {
        "message": {"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "hi"}]},
        "configuration": {
            "blocking": False,
            "historyLength": 1,
            "acceptedOutputModes": ["text/plain"],
            "pushNotificationConfig": {
                "url": "http://h",
                "authentication": {"schemes": ["Bearer"], "credentials": "c"},
            },
        },
        "metadata": {"x": 1},
    }
    assert params_from_v03("send", v03) == {
        "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]},
        "configuration": {
            "acceptedOutputModes": ["text/plain"],
            "historyLength": 1,
            "returnImmediately": True,
            "taskPushNotificationConfig": {
                "url": "http://h",
                "authentication": {"scheme": "Bearer", "credentials": "c"},
            },
        },
        "metadata": {"x": 1},
    }
    assert params_from_v03("stream", {"message": v03["message"], "configuration": {"blocking": True}})[
        "configuration"
    ] == {"returnImmediately": False}


def test_v03_task_and_push_params_become_v1() -> None:
    assert params_from_v03("get", {"id": "t", "historyLength": 2}) == {"id": "t", "historyLength": 2}
    assert params_from_v03("push_set", {"taskId": "t", "pushNotificationConfig": {"url": "http://h", "id": "p"}}) == {
        "url": "http://h",
        "id": "p",
        "taskId": "t",
    }
    assert params_from_v03("push_get", {"id": "t", "pushNotificationConfigId": "p"}) == {"taskId": "t", "id": "p"}
    assert params_from_v03("push_get", {"id": "t"}) == {"taskId": "t"}
    assert params_from_v03("push_list", {"id": "t"}) == {"taskId": "t"}
    assert params_from_v03("push_delete", {"id": "t", "pushNotificationConfigId": "p"}) == {"taskId": "t", "id": "p"}
    assert refused(params_from_v03, "push_set", {"taskId": "t"}).code == -32602
    assert refused(params_from_v03, "send", {"message": {"role": "user", "parts": [{"kind": "?"}]}}).code == -32602
