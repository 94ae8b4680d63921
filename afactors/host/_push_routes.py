"""HTTP routes for pushes without a turn and for delivery audits, authenticated like every route (the API key's
tenant scopes everything).

`POST /v1/pushes` `{"target": <response target>, "message": str, "user"?: {"channel", "user"},
"idempotency_key"?: str}` (or the `Idempotency-Key` header) answers 202 with the push's id;
`GET /v1/deliveries/<turn or push id>` answers the audit of intended vs delivered destinations.
"""

from __future__ import annotations

from collections.abc import Mapping

from quart import Response, request

from afactors.channel import Route
from afactors.host._auth import ApiKeys
from afactors.host._json_api import BadRequest, guarded, json_body, json_response
from afactors.host._push import Pusher
from afactors.host._routing import RoutingError
from afactors.model import Identity, ResponseTarget, parse_identity, parse_response_target

MAX_RECIPIENTS = 100_000
"""Most identities one push may name."""

MAX_MESSAGE_CHARS = 32_768


def _routing_error(error: Exception) -> BadRequest | None:
    if isinstance(error, RoutingError):
        return BadRequest(error.message, error.status, error.code, "target")
    return None


def parse_push(body: object, header_key: str | None) -> tuple[ResponseTarget, str, str, Identity | None]:
    """The target, message, idempotency key and person of a push body (pure); `BadRequest` naming what is wrong."""
    if not isinstance(body, Mapping):
        raise BadRequest("The request body must be a JSON object.")
    unknown = sorted(set(body) - {"target", "message", "user", "idempotency_key"})
    if unknown:
        raise BadRequest(f"Unknown parameter(s): {', '.join(map(str, unknown))}.", param=str(unknown[0]))
    for field in ("target", "message"):
        if body.get(field) is None:
            raise BadRequest(f"Missing required parameter: '{field}'.", code="missing_required_parameter", param=field)
    try:
        target = parse_response_target(body["target"], max_named=MAX_RECIPIENTS)
        user = None if body.get("user") is None else parse_identity(body["user"], "user")
    except ValueError as error:
        raise BadRequest(str(error), param="target" if "user" not in str(error) else "user") from None
    message = body["message"]
    if not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE_CHARS:
        raise BadRequest(f"'message' must be a non-empty string of at most {MAX_MESSAGE_CHARS} characters.",
                         param="message")  # fmt: skip
    key = body.get("idempotency_key", header_key)
    if key is None:
        raise BadRequest("A push needs an idempotency key: send 'idempotency_key' or the 'Idempotency-Key' header.",
                         code="missing_required_parameter", param="idempotency_key")  # fmt: skip
    if not isinstance(key, str) or not key or len(key) > 256 or not key.isprintable():
        raise BadRequest("'idempotency_key' must be 1-256 printable characters.", param="idempotency_key")
    return target, message, key, user


class PushRoutes:
    """The views over one `Pusher`."""

    def __init__(self, pusher: Pusher, api_keys: ApiKeys) -> None:
        self.pusher, self.api_keys = pusher, api_keys

    def routes(self) -> list[Route]:
        return [
            Route("/v1/pushes", guarded(self.push, _routing_error), methods=("POST",)),
            Route("/v1/deliveries/<delivery_id>", guarded(self.deliveries), methods=("GET",)),
        ]

    def _tenant(self) -> str:
        return self.api_keys.tenant(request.headers.get("Authorization"))

    async def push(self) -> Response:
        tenant = self._tenant()
        target, message, key, user = parse_push(await json_body(), request.headers.get("Idempotency-Key"))
        result = await self.pusher.push(tenant, target, message, idempotency_key=key, user=user)
        skipped = [{"channel": s.channel, "user": s.user_id, "reason": s.reason} for s in result.skipped]
        body = {"object": "push", "id": result.id, "destinations": result.destinations, "skipped": skipped,
                "duplicate": result.duplicate}  # fmt: skip
        return json_response(body, 200 if result.duplicate else 202)

    async def deliveries(self, delivery_id: str) -> Response:
        report = self.pusher.report(self._tenant(), delivery_id)
        if report is None:
            raise BadRequest(f"No deliveries recorded for {delivery_id!r}.", 404, "not_found")
        return json_response(report)
