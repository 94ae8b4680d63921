"""API keys are tenants: one key's responses and conversations are invisible to another (R-01, R-50)."""

from __future__ import annotations

import openai
import pytest


async def test_a_response_of_one_key_is_404_to_another_and_cannot_be_continued(serve) -> None:
    async with serve(api_keys=["key-a", "key-b"]) as served, served.sdk("key-a") as alice, served.sdk("key-b") as bob:
        mine = await alice.responses.create(model="m", input="private", background=True)
        async with alice.responses.stream(response_id=mine.id) as stream:
            await stream.get_final_response()
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.input_items.list(mine.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.cancel(mine.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.delete(mine.id)
        bob_stream = await served.http.get(
            f"/v1/responses/{mine.id}?stream=true", headers={"Authorization": "Bearer key-b"}
        )
        with pytest.raises(openai.BadRequestError) as refused:
            await bob.responses.create(model="m", input="steal", previous_response_id=mine.id)
        still_mine = await alice.responses.retrieve(mine.id)
    assert bob_stream.status_code == 404
    assert refused.value.code == "previous_response_not_found"
    assert still_mine.output_text == "Turn 1. You said: private"


async def test_the_same_conversation_id_is_a_different_conversation_per_key(serve) -> None:
    async with serve(api_keys=["key-a", "key-b"]) as served, served.sdk("key-a") as alice, served.sdk("key-b") as bob:
        await alice.responses.create(model="m", input="remember alice was here", conversation="shared")
        answer = await bob.responses.create(model="m", input="what do you remember?", conversation="shared")
    assert answer.output_text == "Turn 1. I don't remember anything yet."


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic key-a", "Bearer"])
async def test_missing_or_wrong_keys_get_401_in_the_openai_envelope(serve, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with serve(api_keys=["key-a"]) as served:
        resp = await served.http.post("/v1/responses", json={"input": "x"}, headers=headers)
        get = await served.http.get("/v1/responses/resp_x", headers=headers)
    for answer in (resp, get):
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.json()["error"]["code"] == "invalid_api_key"


async def test_the_sdk_sees_a_wrong_key_as_authentication_error(serve) -> None:
    async with serve(api_keys=["key-a"]) as served, served.sdk("nope") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.responses.create(model="m", input="x")
