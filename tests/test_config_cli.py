"""`python -m afactors --config FILE` serving on loopback, and `python -m afactors config check|show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from afactors.cli import main

KEY = "tenant-key-0123"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "afactors.toml"
    path.write_text(text)
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "afactors", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_the_host_serves_what_the_file_says_and_flags_override_it(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        f"""
[host]
port = 1
state_dir = "{tmp_path / "state"}"
api_keys = ["${{TEST_KEY}}"]
[channels]
enabled = ["responses"]
""",
    )
    with subprocess.Popen(
        [sys.executable, "-m", "afactors", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TEST_KEY": KEY},
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            assert "channels responses" in banner, proc.stderr.read() if proc.stderr else ""
            url = proc.stdout.readline().removeprefix("serving on ").strip()
            body = {"model": "afactors", "input": "hello"}
            assert httpx.post(f"{url}/v1/responses", json=body, timeout=10).status_code == 401
            answer = httpx.post(
                f"{url}/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
            )
            assert answer.status_code == 200 and answer.json()["status"] == "completed"
            assert (tmp_path / "state").is_dir()
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_a_bad_file_stops_the_host_before_it_serves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, '[host]\nbusy_policy = "queue"\n')
    assert main(["--config", str(config), "--port", "0", "--state-dir", str(tmp_path / "state")]) == 2
    assert capsys.readouterr().err.startswith(
        "error: host.busy_policy: expected one of enqueue, reject, interrupt, steer"
    )
    assert not (tmp_path / "state").exists()


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    config = write(tmp_path, '[host]\nport = 9123\n[channels]\nenabled = ["chat"]\n')
    result = run("config", "check", "--config", str(config))
    assert (result.returncode, result.stdout) == (0, "ok: 127.0.0.1:9123, channels chat\n")


def test_config_check_refuses_with_the_key_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        '[channels.telegram]\ntoken = "123:AAsecret"\n': "error: channels.telegram.token: a secret must not be written",
        "[host]\nprot = 1\n": "error: host.prot: unknown key; allowed: active_window, admin_key, advertise, api_keys,",
        "[host\n": f"error: {tmp_path / 'afactors.toml'}: not valid TOML:",
    }
    for text, message in cases.items():
        assert main(["config", "check", "--config", str(write(tmp_path, text))]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and "123:AAsecret" not in err, err
    assert main(["config", "check", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    missing = run("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "nope.toml: cannot read the file" in missing.stderr


def test_config_show_prints_the_effective_configuration_with_secrets_masked(tmp_path: Path) -> None:
    config = write(tmp_path, '[host]\nport = 9000\nadmin_key = "${ADMIN}"\n[channels.telegram]\ntoken = "${TG}"\n')
    env = {"ADMIN": "admin-sekrit", "TG": "123:AAsekrit"}
    shown = run("config", "show", "--json", "--config", str(config), "--header-timeout", "3", env=env)
    assert shown.returncode == 0 and "sekrit" not in shown.stdout
    document = json.loads(shown.stdout)
    assert (document["host"]["port"], document["host"]["limits"]["header_timeout"]) == (9000, 3.0)
    assert document["host"]["admin_key"] == "***" and document["channels"]["telegram"]["token"] == "***"
    assert "telegram" in document["channels"]["enabled"]


def test_config_show_prints_toml_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path, '[host]\nport = 9000\napi_keys = ["${K}"]\n[host.retention]\ndedup = "none"\n')
    monkeypatch.setenv("K", "sekrit")
    assert main(["config", "show", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    shown = tomllib.loads(out)
    assert "sekrit" not in out and shown["host"]["api_keys"] == ["***"]
    assert (shown["host"]["port"], shown["host"]["retention"]["dedup"]) == (9000, "none")
