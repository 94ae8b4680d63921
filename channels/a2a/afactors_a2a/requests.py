"""The params of every A2A operation (A-04, A-11..A-14, push configs) parsed into typed requests; v0.3 params
rewritten into v1 ones first (`params_from_v03`). Pure."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from afactors_a2a.errors import invalid_params
from afactors_a2a.fields import Fields
from afactors_a2a.messages import InboundMessage, message_from_v03, parse_message

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_ID_LENGTH = 200

STATES = (
    "TASK_STATE_SUBMITTED",
    "TASK_STATE_WORKING",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_REJECTED",
    "TASK_STATE_AUTH_REQUIRED",
)


@attrs.frozen
class PushConfig:
    """Where and how to push a task's updates: a webhook URL, a token echoed in `X-A2A-Notification-Token`,
    and an optional `Authorization: <scheme> <credentials>`. `version` is the protocol of the request that made
    it: pushes are rendered in that version."""

    task_id: str
    id: str
    url: str
    token: str | None = None
    scheme: str | None = None
    credentials: str | None = None
    version: str = "1.0"

    def render(self) -> dict[str, Any]:
        """The v1 `TaskPushNotificationConfig` (credentials included: the owner may read back what they set)."""
        rendered: dict[str, Any] = {"taskId": self.task_id, "id": self.id, "url": self.url}
        if self.token is not None:
            rendered["token"] = self.token
        if self.scheme is not None:
            rendered["authentication"] = {
                "scheme": self.scheme,
                **({"credentials": self.credentials} if self.credentials else {}),
            }
        return rendered

    def render_v03(self) -> dict[str, Any]:
        """The v0.3 `TaskPushNotificationConfig`."""
        config: dict[str, Any] = {"id": self.id, "url": self.url}
        if self.token is not None:
            config["token"] = self.token
        if self.scheme is not None:
            config["authentication"] = {
                "schemes": [self.scheme],
                **({"credentials": self.credentials} if self.credentials else {}),
            }
        return {"taskId": self.task_id, "pushNotificationConfig": config}


@attrs.frozen
class SendRequest:
    """SendMessage / SendStreamingMessage."""

    message: InboundMessage
    accepted_output_modes: tuple[str, ...] = ()
    history_length: int | None = None
    return_immediately: bool = False
    push: PushConfig | None = None  # its task_id is empty until the task exists
    metadata: dict[str, Any] | None = None


@attrs.frozen
class TaskQuery:
    """GetTask, CancelTask, SubscribeToTask."""

    id: str
    history_length: int | None = None


@attrs.frozen
class ListQuery:
    """ListTasks (A-14)."""

    context_id: str | None = None
    state: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""
    history_length: int | None = None
    include_artifacts: bool = False
    status_after: float | None = None


@attrs.frozen
class PushRef:
    """The push-config methods other than create: a task and (except for list) one of its configs."""

    task_id: str
    id: str | None = None


def _task_id(fields: Fields, name: str = "id") -> str:
    value = fields.text(name, required=True) or ""
    if len(value) > MAX_ID_LENGTH:
        raise invalid_params(f"'{fields.where(name)}' is longer than {MAX_ID_LENGTH} characters", fields.where(name))
    return value


def parse_push_config(fields: Fields, task_id: str | None, new_id: str, version: str) -> PushConfig:
    """A v1 push config; the URL must be absolute http(s). An absent id gets `new_id`."""
    url = fields.text("url", required=True) or ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_params(
            f"'{fields.where('url')}' must be an absolute http(s) URL, got {url!r}", fields.where("url")
        )
    auth = fields.obj("authentication")
    scheme = auth.text("scheme", required=True) if auth is not None else None
    credentials = auth.text("credentials") if auth is not None else None
    return PushConfig(
        task_id=task_id if task_id is not None else fields.text("taskId") or "",
        id=fields.text("id") or new_id,
        url=url,
        token=fields.text("token", empty=True),
        scheme=scheme,
        credentials=credentials,
        version=version,
    )


def parse_send(params: dict[str, Any], input_modes: tuple[str, ...], new_id: str, version: str) -> SendRequest:
    fields = Fields(params, "")
    message = fields.obj("message", required=True)
    assert message is not None
    config = fields.obj("configuration")
    if config is None:
        return SendRequest(parse_message(message, input_modes), metadata=fields.metadata())
    push = config.obj("taskPushNotificationConfig")
    return SendRequest(
        message=parse_message(message, input_modes),
        accepted_output_modes=config.strings("acceptedOutputModes"),
        history_length=config.integer("historyLength", low=0),
        return_immediately=bool(config.flag("returnImmediately")),
        push=None if push is None else parse_push_config(push, "", new_id, version),
        metadata=fields.metadata(),
    )


def parse_task_query(params: dict[str, Any]) -> TaskQuery:
    fields = Fields(params, "")
    return TaskQuery(_task_id(fields), fields.integer("historyLength", low=0))


def _timestamp(fields: Fields, name: str) -> float | None:
    text = fields.text(name)
    if text is None:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid_params(f"'{name}' must be an RFC 3339 timestamp, got {text!r}", name) from None


def parse_list(params: dict[str, Any]) -> ListQuery:
    fields = Fields(params, "")
    state = fields.text("status")
    if state is not None and state not in STATES:
        raise invalid_params(f"'status' must be one of {', '.join(STATES)}, got {state!r}", "status")
    page_size = fields.integer("pageSize", low=1, high=MAX_PAGE_SIZE)
    return ListQuery(
        context_id=fields.text("contextId"),
        state=state,
        page_size=DEFAULT_PAGE_SIZE if page_size is None else page_size,
        page_token=fields.text("pageToken", empty=True) or "",
        history_length=fields.integer("historyLength", low=0),
        include_artifacts=bool(fields.flag("includeArtifacts")),
        status_after=_timestamp(fields, "statusTimestampAfter"),
    )


def parse_push_ref(params: dict[str, Any], *, needs_id: bool) -> PushRef:
    fields = Fields(params, "")
    return PushRef(_task_id(fields, "taskId"), fields.text("id", required=needs_id))


# -- v0.3 -----------------------------------------------------------------------------------------------------


def _push_config_from_v03(config: Fields, task_id: object) -> dict[str, Any]:
    converted: dict[str, Any] = {key: config.data[key] for key in ("id", "url", "token") if key in config.data}
    auth = config.obj("authentication")
    if auth is not None:
        schemes = auth.strings("schemes")
        converted["authentication"] = {
            "scheme": schemes[0] if schemes else None,
            "credentials": auth.data.get("credentials"),
        }
    return {**converted, "taskId": task_id} if task_id is not None else converted


def params_from_v03(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """v0.3 params rewritten as the v1 params of the same operation."""
    fields = Fields(params, "")
    if operation in ("send", "stream"):
        converted: dict[str, Any] = {key: value for key, value in params.items() if key != "configuration"}
        if fields.has("message"):
            converted["message"] = message_from_v03(params["message"], "message")
        config = fields.obj("configuration")
        if config is not None:
            v1: dict[str, Any] = {
                key: config.data[key] for key in ("acceptedOutputModes", "historyLength") if key in config.data
            }
            blocking = config.flag("blocking")
            if blocking is not None:
                v1["returnImmediately"] = not blocking
            push = config.obj("pushNotificationConfig")
            if push is not None:
                v1["taskPushNotificationConfig"] = _push_config_from_v03(push, None)
            converted["configuration"] = v1
        return converted
    if operation == "push_set":
        config = fields.obj("pushNotificationConfig", required=True)
        assert config is not None
        return _push_config_from_v03(config, params.get("taskId"))
    if operation in ("push_get", "push_list", "push_delete"):
        converted = {"taskId": params.get("id")}
        if "pushNotificationConfigId" in params:
            converted["id"] = params["pushNotificationConfigId"]
        return converted
    return params
