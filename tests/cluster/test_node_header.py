"""`X-Afactors-Node`: a host with a `node_id` names itself on every HTTP response; without one, no header."""

from __future__ import annotations

from pathlib import Path

import httpx

import afactors
from afactors_responses import ResponsesChannel


async def test_every_response_of_a_node_names_it(tmp_path: Path) -> None:
    async with (
        afactors.open_host(channels=[ResponsesChannel()], port=0, state_dir=tmp_path, node_id="node-7") as host,
        httpx.AsyncClient(base_url=host.urls[0]) as http,
    ):
        answers = [
            await http.post("/v1/responses", json={"model": "m", "input": "hi"}),  # the lean route
            await http.post("/v1/responses", json={"model": "m", "input": "hi", "stream": True}),  # Quart, SSE
            await http.post("/v1/responses", content=b"{not json", headers={"content-type": "application/json"}),
            await http.get("/readiness"),
            await http.get("/no/such/page"),
            await http.delete("/readiness"),
        ]
    assert [a.status_code for a in answers] == [200, 200, 400, 200, 404, 405]
    assert [a.headers.get_list("x-afactors-node") for a in answers] == [["node-7"]] * len(answers)


async def test_a_host_without_a_node_id_sends_no_node_header(tmp_path: Path) -> None:
    async with (
        afactors.open_host(channels=[ResponsesChannel()], port=0, state_dir=tmp_path) as host,
        httpx.AsyncClient(base_url=host.urls[0]) as http,
    ):
        answer = await http.post("/v1/responses", json={"model": "m", "input": "hi"})
    assert answer.status_code == 200 and "x-afactors-node" not in answer.headers
