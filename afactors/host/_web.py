"""The browser pages the host serves: `/` (chat over the Responses API), `/status` and `/status.json`.

The pages are plain files shipped in the package (`afactors/host/web/`): no build step, no CDN. With API keys the
pages ask for one once and keep it in the tab's `sessionStorage`; `/status.json` needs it as a bearer token.

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

import orjson
from quart import Response, request

from afactors.channel import Route, Unauthorized
from afactors.host._auth import ApiKeys
from afactors.host._status import StatusSources, status_report

_WEB = files("afactors.host").joinpath("web")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
_NO_STORE = {"Cache-Control": "no-store"}


def web_asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of a shipped page or script; None for anything else."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or name.startswith(".") or suffix not in _TYPES:
        return None
    resource = _WEB.joinpath(name)
    if not resource.is_file():
        return None
    return resource.read_bytes(), _TYPES[suffix]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, content_type="application/json", headers=_NO_STORE)


def _page(name: str) -> Callable[..., Any]:
    async def view(**kwargs: Any) -> Response:
        asset = web_asset(kwargs.get("name", name))
        if asset is None:
            return _json({"error": {"message": "not found", "type": "not_found"}}, 404)
        body, content_type = asset
        return Response(body, content_type=content_type, headers=_NO_STORE)

    view.__name__ = f"page_{name.split('.')[0]}"
    return view


def web_routes(sources: StatusSources, api_keys: ApiKeys) -> list[Route]:
    """The routes of the chat page, the status page, their scripts and the status report."""

    async def status_json() -> Response:
        try:
            tenant = api_keys.tenant(request.headers.get("Authorization"))
        except Unauthorized as exc:
            return _json({"error": {"message": str(exc), "type": "unauthorized"}}, 401)
        return _json(status_report(sources, tenant if api_keys.enabled else None))

    return [
        Route("/", _page("chat.html"), methods=("GET",)),
        Route("/status", _page("status.html"), methods=("GET",)),
        Route("/ui/<name>", _page("asset"), methods=("GET",)),
        Route("/status.json", status_json, methods=("GET",)),
    ]
