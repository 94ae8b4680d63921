"""Bad input on every route gets the right JSON-RPC (or HTTP) error, never a 500, a hang or a traceback."""

from __future__ import annotations

from typing import Any

import h11
import orjson

from afactors.host import ServerLimits
from afactors.testing import disk_full, raw_exchange
from afactors_a2a import A2AChannel, CardSettings

MESSAGE = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
V1 = {"A2A-Version": "1.0"}


def rpc_error(response: Any, code: int, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    return body


BAD_ENVELOPES = [
    (b"{oops", -32700),
    (b"[]", -32600),
    (b'[{"jsonrpc":"2.0","id":1,"method":"GetTask"}]', -32600),
    (b'{"jsonrpc":"1.0","id":1,"method":"GetTask"}', -32600),
    (b'{"jsonrpc":"2.0","id":false,"method":"GetTask"}', -32600),
    (b'{"jsonrpc":"2.0","id":1}', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"NoSuchMethod"}', -32601),
    (b'{"jsonrpc":"2.0","id":1,"method":"GetTask","params":[1]}', -32602),
]


async def test_a02_bad_json_rpc_gets_its_code(serve) -> None:
    async with serve() as served:
        for raw, code in BAD_ENVELOPES:
            response = await served.http.post("/a2a", content=raw, headers={**V1, "Content-Type": "application/json"})
            rpc_error(response, code)


async def test_a02_the_request_id_is_echoed_in_errors(serve) -> None:
    async with serve() as served:
        body = rpc_error(await served.rpc("GetTask", {"id": "a2a-none"}, id="req-7"), -32001)
    assert body["id"] == "req-7"


async def test_transport_level_refusals_have_their_http_status(serve) -> None:
    async with serve() as served:
        get = await served.http.get("/a2a")
        text = await served.http.post("/a2a", content=b"{}", headers={"Content-Type": "text/plain"})
        card_post = await served.http.post("/.well-known/agent-card.json", json={})
    assert rpc_error(get, -32600, 405) and get.headers["allow"] == "POST"
    rpc_error(text, -32600, 415)
    assert card_post.status_code == 405 and card_post.json()["error"]["code"] == 405


async def test_a16_version_mismatches_are_32009(serve) -> None:
    cases = [("GetTask", None), ("GetTask", "9.9"), ("GetTask", "2.0"), ("tasks/get", "1.0"), ("message/send", "1.0")]
    async with serve() as served:
        for method, header in cases:
            rpc_error(await served.rpc(method, {"id": "x"}, version=header), -32009)


async def test_a16_list_tasks_does_not_exist_in_0_3(serve) -> None:
    async with serve() as served:
        rpc_error(await served.rpc("tasks/list", {}, version=None), -32601)


BAD_SENDS = [
    ({}, -32602),
    ({"message": {"role": "ROLE_USER", "parts": [{"text": "x"}]}}, -32602),
    ({"message": {**MESSAGE, "parts": []}}, -32602),
    ({"message": {**MESSAGE, "parts": [{"oops": 1}]}}, -32602),
    ({"message": {**MESSAGE, "parts": [{"raw": "AAAA", "mediaType": "application/zip"}]}}, -32005),
    ({"message": MESSAGE, "configuration": {"acceptedOutputModes": ["audio/mpeg"]}}, -32005),
    ({"message": MESSAGE, "configuration": {"historyLength": -1}}, -32602),
    ({"message": {**MESSAGE, "contextId": "x" * 201}}, -32602),
    ({"message": {**MESSAGE, "taskId": "a2a-unknown"}}, -32001),
    ({"message": MESSAGE, "configuration": {"taskPushNotificationConfig": {"url": "not a url"}}}, -32602),
]


async def test_a04_bad_sends_are_refused_before_any_task_exists(serve) -> None:
    async with serve() as served:
        for method in ("SendMessage", "SendStreamingMessage"):
            for params, code in BAD_SENDS:
                rpc_error(await served.rpc(method, params), code)
        listed = (await served.rpc("ListTasks", {})).json()
    assert listed["result"]["totalSize"] == 0


BAD_CALLS = [
    ("GetTask", {}, -32602),
    ("GetTask", {"id": "a2a-x", "historyLength": -1}, -32602),
    ("GetTask", {"id": "not-ours"}, -32001),
    ("CancelTask", {"id": 3}, -32602),
    ("CancelTask", {"id": "a2a-x"}, -32001),
    ("SubscribeToTask", {}, -32602),
    ("SubscribeToTask", {"id": "a2a-x"}, -32001),
    ("ListTasks", {"pageSize": 0}, -32602),
    ("ListTasks", {"pageSize": 101}, -32602),
    ("ListTasks", {"pageToken": "garbage"}, -32602),
    ("ListTasks", {"status": "done"}, -32602),
    ("CreateTaskPushNotificationConfig", {"url": "http://h/x"}, -32602),
    ("CreateTaskPushNotificationConfig", {"taskId": "a2a-x", "url": "http://h/x"}, -32001),
    ("CreateTaskPushNotificationConfig", {"taskId": "a2a-x", "url": "mailto:me"}, -32602),
    ("GetTaskPushNotificationConfig", {"taskId": "a2a-x"}, -32602),
    ("GetTaskPushNotificationConfig", {"taskId": "a2a-x", "id": "p"}, -32001),
    ("ListTaskPushNotificationConfigs", {}, -32602),
    ("DeleteTaskPushNotificationConfig", {"taskId": "a2a-x", "id": "p"}, -32001),
    ("GetExtendedAgentCard", {}, -32004),
]


async def test_bad_params_of_every_other_method(serve) -> None:
    async with serve() as served:
        for method, params, code in BAD_CALLS:
            rpc_error(await served.rpc(method, params), code)


async def test_a03_errors_in_v03_carry_plain_data(serve) -> None:
    async with serve() as served:
        body = rpc_error(await served.rpc("tasks/get", {"id": "a2a-x"}, version=None), -32001)
        v1 = rpc_error(await served.rpc("GetTask", {"id": "a2a-x"}), -32001)
        unparsed = await served.http.post("/a2a", content=b"{", headers={"Content-Type": "application/json"})
        version = rpc_error(await served.rpc("GetTask", {"id": "a2a-x"}, version=None), -32009)
    assert body["error"]["data"] == {"taskId": "a2a-x"}
    assert "data" not in rpc_error(unparsed, -32700)["error"]  # no header: a v0.3 client, v0.3 errors
    assert version["error"]["data"][0]["reason"] == "VERSION_NOT_SUPPORTED"
    assert v1["error"]["data"][0]["reason"] == "TASK_NOT_FOUND"


async def test_a12_a_missing_config_of_an_existing_task_is_32001(serve) -> None:
    async with serve() as served:
        task = (await served.rpc("SendMessage", {"message": MESSAGE})).json()["result"]["task"]
        rpc_error(await served.rpc("GetTaskPushNotificationConfig", {"taskId": task["id"], "id": "none"}), -32001)


async def test_a15_features_switched_off_are_refused_and_not_advertised(serve) -> None:
    channel = A2AChannel(card=CardSettings(streaming=False, push_notifications=False))
    push = {"url": "http://127.0.0.1:9/h"}
    async with serve(channel=channel) as served:
        card = (await served.http.get("/.well-known/agent-card.json")).json()
        task = (await served.rpc("SendMessage", {"message": MESSAGE})).json()["result"]["task"]
        ref = {"taskId": task["id"], "id": "p"}
        stream = await served.rpc("SendStreamingMessage", {"message": MESSAGE})
        subscribe = await served.rpc("SubscribeToTask", {"id": task["id"]})
        refused = [
            await served.rpc("CreateTaskPushNotificationConfig", {"taskId": task["id"], **push}),
            await served.rpc("GetTaskPushNotificationConfig", ref),
            await served.rpc("ListTaskPushNotificationConfigs", {"taskId": task["id"]}),
            await served.rpc("DeleteTaskPushNotificationConfig", ref),
            await served.rpc(
                "SendMessage", {"message": MESSAGE, "configuration": {"taskPushNotificationConfig": push}}
            ),
            await served.rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}, version=None),
        ]
    assert card["capabilities"] == {"streaming": False, "pushNotifications": False, "extendedAgentCard": False}
    rpc_error(stream, -32004)
    rpc_error(subscribe, -32004)
    for response in refused:
        rpc_error(response, -32003)


async def test_a_context_busy_under_the_reject_policy_is_32004(serve) -> None:
    async with serve(channel=A2AChannel(busy_policy="reject")) as served:
        started = await served.rpc(
            "SendMessage",
            {
                "message": {**MESSAGE, "contextId": "c", "parts": [{"text": "hang"}]},
                "configuration": {"returnImmediately": True},
            },
        )
        busy = await served.rpc("SendMessage", {"message": {**MESSAGE, "contextId": "c"}})
        await served.rpc("CancelTask", {"id": started.json()["result"]["task"]["id"]})
    body = rpc_error(busy, -32004)
    assert "already running" in body["error"]["message"]


async def test_an_oversized_body_is_413_with_a_json_rpc_error(serve, raw) -> None:
    async with serve() as served:
        received = await raw(  # the server answers before the rest of the body
            served.url,
            f"Content-Length: {17 << 20}\r\n",
            b'{"jsonrpc": "2.0", "x": "' + b"x" * 65536,
            lambda got: b"\r\n\r\n" in got and got.rstrip().endswith(b"}"),
        )
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.split()[1] == b"413"
    assert orjson.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == -32600


async def test_a_full_disk_is_507_with_retry_after_and_nothing_started(serve) -> None:
    async with serve() as served:
        disk_full(served.host.store)
        full = await served.rpc("SendMessage", {"message": MESSAGE})
        disk_full(served.host.store, False)
        after = await served.rpc("SendMessage", {"message": {**MESSAGE, "messageId": "m2"}})
    body = rpc_error(full, -32603, 507)
    assert full.headers["retry-after"] == "30" and "disk" in body["error"]["message"]
    assert after.status_code == 200 and after.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_a_body_that_does_not_arrive_in_time_is_408(serve) -> None:
    async with serve(limits=ServerLimits(body_timeout=0.5)) as served:
        head = [("host", "x"), ("content-type", "application/json"), ("content-length", "100")]
        request = h11.Request(method="POST", target="/a2a", headers=head)
        response, data = await raw_exchange(served.url, request, b'{"jsonrpc": "2.0"')
    assert response.status_code == 408
    assert orjson.loads(data)["error"]["code"] == -32600
