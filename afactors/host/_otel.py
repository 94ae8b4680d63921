"""OpenTelemetry traces of turns (the `otel` extra): the host's `Tracing`, and the SDK set-up for `--otel`.

Imported only when traces are on, so the core runs without OpenTelemetry installed. A span never carries a
message body, a raw conversation id or a tenant: the conversation is a hash of its key, errors are codes and
exception class names (docs/observability.md lists every attribute).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from afactors import __version__
from afactors._tracing import Tracing, TurnSpan, current
from afactors.model import ConversationKey, Envelope

TURN_SPAN = "afactors.turn"
COMMIT_SPAN = "afactors.commit"


def conversation_hash(key: ConversationKey) -> str:
    """A stable pseudonym of a conversation (tenant and id): the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.path.encode()).hexdigest()[:16]


class OtelTurnSpan(TurnSpan):
    """A turn attempt's recording span."""

    __slots__ = ("_channel", "_span", "_tracer")

    def __init__(self, tracer: trace.Tracer, span: trace.Span, channel: Callable[[], str]) -> None:
        self._tracer = tracer
        self._span = span
        self._channel: Callable[[], str] | None = channel

    def name_channel(self) -> None:
        """Set the channel attribute once: as late as possible, since a channel notes its turns after submitting
        them (a turn can start first), and no later than the turn's answer (which forgets the channel)."""
        if self._channel is not None:
            self._span.set_attribute("afactors.channel", self._channel())
            self._channel = None

    @contextmanager
    def _commit(self) -> Iterator[None]:
        started = time.perf_counter()
        context = trace.set_span_in_context(self._span)
        try:
            with self._tracer.start_as_current_span(COMMIT_SPAN, context=context, record_exception=False):
                yield
        finally:
            self._span.set_attribute("afactors.commit.duration_ms", round((time.perf_counter() - started) * 1000, 3))

    def commit(self) -> AbstractContextManager[Any]:
        return self._commit()

    def failed(self, error_type: str) -> None:
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, "the target failed"))

    def ended(self, status: str, code: str | None = None) -> None:
        self.name_channel()
        self._span.set_attribute("afactors.turn.status", status)
        if code is not None:
            self._span.set_attribute("afactors.turn.error_code", code)
        if status == "failed":
            self._span.set_status(Status(StatusCode.ERROR, code))

    def headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self._span))
        return carrier


class OtelTracing(Tracing):
    """Opens an `afactors.turn` span per turn attempt with `provider`, continuing the trace its envelope carries.

    `channel_of(turn_id, envelope)` names the channel that submitted a turn; `busy_policy` is the host's default.
    """

    enabled = True

    def __init__(
        self, provider: trace.TracerProvider, channel_of: Callable[[str, Envelope], str], busy_policy: str
    ) -> None:
        self._tracer = provider.get_tracer("afactors", __version__)
        self._channel_of = channel_of
        self._busy_policy = busy_policy

    def carrier(self, header: Callable[[str], str | None]) -> dict[str, str]:
        fields = propagate.get_global_textmap().fields
        return {name: value for name in fields if (value := header(name)) is not None}

    def turn(self, turn_id: str, envelopes: list[Envelope], attempt: int) -> AbstractContextManager[TurnSpan]:
        return self._turn(turn_id, envelopes, attempt)

    @contextmanager
    def _turn(self, turn_id: str, envelopes: list[Envelope], attempt: int) -> Iterator[TurnSpan]:
        first = envelopes[0]
        attributes: dict[str, str | int] = {
            "afactors.conversation.hash": conversation_hash(first.key),
            "afactors.turn.id": turn_id,
            "afactors.turn.kind": first.kind,
            "afactors.turn.attempt": attempt,
            "afactors.busy_policy": first.busy_policy or self._busy_policy,
        }
        if len(envelopes) > 1:
            attributes["afactors.turn.envelopes"] = len(envelopes)
        linked = (_remote(envelope.trace_context) for envelope in envelopes[1:])  # folded (steered) messages
        links = [Link(context) for context in linked if context is not None]
        # no carrier: a new trace, whatever span was current where the worker task started
        parent = propagate.extract(first.trace_context) if first.trace_context else Context()
        span = self._tracer.start_span(
            TURN_SPAN, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links,
            record_exception=False, set_status_on_exception=False,
        )  # fmt: skip
        wrapped = OtelTurnSpan(self._tracer, span, lambda: self._channel_of(turn_id, first))
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            try:
                with current(wrapped):
                    yield wrapped
            finally:
                wrapped.name_channel()


def _remote(carrier: dict[str, str] | None) -> trace.SpanContext | None:
    """The span context a trace-context carrier names, if it names a valid one."""
    if not carrier:
        return None
    context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return context if context.is_valid else None


def _exporter(name: str) -> SpanExporter:
    """The span exporter named by `OTEL_TRACES_EXPORTER` (`otlp` is OTLP over HTTP/protobuf)."""
    group = entry_points(group="opentelemetry_traces_exporter")
    found = group.select(name="otlp_proto_http" if name == "otlp" else name)
    if not found:
        known = ", ".join(sorted({"otlp", *group.names}))
        raise SystemExit(f"OTEL_TRACES_EXPORTER={name!r} is not installed (installed: {known})")
    exporter: SpanExporter = next(iter(found)).load()()
    return exporter


def sdk_provider() -> TracerProvider:
    """A `TracerProvider` configured by the standard environment: `OTEL_SERVICE_NAME` (default "afactors"),
    `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_EXPORTER` (default `otlp`; `console`, `none`, comma-separated),
    `OTEL_EXPORTER_OTLP_ENDPOINT` and the other exporter and `OTEL_BSP_*` batch settings. Also made the global
    provider, so instrumented libraries inside a target join the turn's trace."""
    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "afactors"}))
    provider = TracerProvider(resource=resource)
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        if name.strip() and name.strip() != "none":
            provider.add_span_processor(BatchSpanProcessor(_exporter(name.strip())))
    trace.set_tracer_provider(provider)
    return provider
