"""The OpenAPI document of the default body contract, served at `GET <path>/docs/openapi.json`."""

from __future__ import annotations

from typing import Any


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {"$ref": "#/components/schemas/Error"}
_STATUS = {"$ref": "#/components/schemas/InvocationStatus"}
_ERRORS = {
    "400": _json(_ERROR, "Unparsable JSON, bad query parameter or header"),
    "401": _json(_ERROR, "Missing or wrong API key"),
    "404": _json(_ERROR, "Unknown invocation"),
    "409": _json(_ERROR, "Conversation busy, invocation id reused, or invocation already finished"),
    "422": _json(_ERROR, "Body of the wrong shape"),
}
_ID_PARAM = {"name": "invocation_id", "in": "path", "required": True, "schema": {"type": "string"}}
_SESSION_PARAM = {"name": "agent_session_id", "in": "query", "required": False, "schema": {"type": "string"}}


def default_openapi(path: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document of the default Invocations body, routes under `path`."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "afactors Invocations", "version": "1.0.0"},
        "paths": {
            path: {
                "post": {
                    "summary": "Run one turn of the session's conversation",
                    "parameters": [_SESSION_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvocationRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": (
                                'The reply; `text/event-stream` of `{"delta"}` frames ending in `[DONE]` when '
                                "`stream` is true"
                            ),
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/InvocationResponse"}},
                                "text/event-stream": {"schema": {"type": "string"}},
                            },
                        },
                        "202": _json(_STATUS, "Background invocation accepted; poll its status"),
                        **_ERRORS,
                    },
                }
            },
            f"{path}/{{invocation_id}}": {
                "get": {
                    "summary": "Status (and result once completed) of an invocation",
                    "parameters": [_ID_PARAM],
                    "responses": {"200": _json(_STATUS, "The invocation's status"), **_ERRORS},
                }
            },
            f"{path}/{{invocation_id}}/cancel": {
                "post": {
                    "summary": "Cancel a queued or running invocation",
                    "parameters": [_ID_PARAM],
                    "responses": {"200": _json(_STATUS, "The invocation as it now stands"), **_ERRORS},
                }
            },
        },
        "components": {
            "schemas": {
                "InvocationRequest": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string", "minLength": 1},
                        "session_id": {"type": "string", "maxLength": 256},
                        "stream": {"type": "boolean", "default": False},
                        "background": {"type": "boolean", "default": False},
                    },
                },
                "InvocationResponse": {
                    "type": "object",
                    "required": ["response", "session_id", "invocation_id"],
                    "properties": {
                        "response": {"type": "string"},
                        "session_id": {"type": "string"},
                        "invocation_id": {"type": "string"},
                    },
                },
                "InvocationStatus": {
                    "type": "object",
                    "required": ["invocation_id", "session_id", "status"],
                    "properties": {
                        "invocation_id": {"type": "string"},
                        "session_id": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"],
                        },
                        "result": {"$ref": "#/components/schemas/InvocationResponse"},
                        "error": {"$ref": "#/components/schemas/ErrorDetail"},
                    },
                },
                "ErrorDetail": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
                },
            }
        },
    }
