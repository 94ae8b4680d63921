"""Traces from the command line: `--otel` exports turn spans over OTLP/HTTP to a collector, and the host runs the
same without OpenTelemetry installed (a subprocess in which every `opentelemetry` import fails)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from afactors.testing import serve_cli

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

NO_OPENTELEMETRY = """
import sys


class NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoOpenTelemetry())
"""


@pytest.fixture
def without_otel(tmp_path: Path) -> Path:
    """A directory whose `sitecustomize.py` makes every `opentelemetry` import fail (put it on PYTHONPATH)."""
    site = tmp_path / "no-otel"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_OPENTELEMETRY)
    return site


def responses_turn(url: str, text: str) -> dict:
    answer = httpx.post(url + "/v1/responses", json={"input": text}, headers={"traceparent": TRACEPARENT}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def stopped(proc: subprocess.Popen[str]) -> None:
    """Stop a served host as an operator does (SIGTERM) and check it shut down cleanly."""
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps every decoded `ExportTraceServiceRequest`."""

    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_otel_flag_exports_turn_spans_over_otlp_to_the_configured_collector(state_dir: Path) -> None:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Handler", (Collector,), {"received": received})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as collector:
        threading.Thread(target=collector.serve_forever, daemon=True).start()
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
            "OTEL_SERVICE_NAME": "traced-agent",
        }
        with serve_cli("--otel", "--state-dir", str(state_dir), "--channel", "responses", env=env) as (proc, url):
            made = responses_turn(url, "hello")
            stopped(proc)  # the spans still batched are exported on the way out
        collector.shutdown()
    spans = [
        (resource.resource, span)
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    [(resource, turn)] = [(resource, span) for resource, span in spans if span.name == "afactors.turn"]
    assert turn.trace_id.hex() == TRACE_ID
    attributes = {a.key: a.value for a in turn.attributes}
    assert attributes["afactors.turn.id"].string_value == made["id"]
    assert attributes["afactors.channel"].string_value == "responses"
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "traced-agent"


def test_the_host_serves_without_opentelemetry_installed(state_dir: Path, without_otel: Path) -> None:
    args = ["--state-dir", str(state_dir), "--channel", "responses"]
    with serve_cli(*args, pythonpath=[without_otel]) as (proc, url):
        made = responses_turn(url, "hello")
        stopped(proc)
    assert made["status"] == "completed" and made["output"][0]["content"][0]["text"]


def cli_error(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m afactors ARGS` expected to refuse to start."""
    command = [sys.executable, "-m", "afactors", "--port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def test_otel_flag_without_opentelemetry_is_a_clear_error(state_dir: Path, without_otel: Path) -> None:
    done = cli_error("--otel", "--state-dir", str(state_dir), PYTHONPATH=str(without_otel))
    assert done.returncode == 2
    assert "afactors[otel]" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_exporter_is_a_clear_error(state_dir: Path) -> None:
    # traces switched on by the variable this time
    done = cli_error("--state-dir", str(state_dir), AFACTORS_OTEL="1", OTEL_TRACES_EXPORTER="carrier-pigeon")
    assert done.returncode == 1
    assert "carrier-pigeon" in done.stderr and "otlp" in done.stderr and "Traceback" not in done.stderr
