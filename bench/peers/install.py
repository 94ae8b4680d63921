"""Set up the peers' own virtual environment, bench/.peers/venv (git-ignored), from requirements.txt.

Microsoft's helpers never enter afactors' environment: they get a venv of their own, built with this
machine's Python (the base interpreter of the running one) and pip from PyPI. The venv is rebuilt when
requirements.txt changes; a failed install leaves no half venv behind.

    python -m bench.peers.install [--force]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.common import REPO_ROOT

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
VENV = REPO_ROOT / "bench" / ".peers" / "venv"
_STAMP = "bench-requirements.txt"


def venv_python(venv: Path = VENV) -> Path:
    """The interpreter of the peers' venv."""
    return venv / "bin" / "python"


def is_current(venv: Path = VENV) -> bool:
    """True when the venv exists and was built from the current requirements.txt."""
    stamp = venv / _STAMP
    return venv_python(venv).exists() and stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text()


def _base_python() -> str:
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure_venv(force: bool = False, venv: Path = VENV) -> Path:
    """Build the venv if missing or stale (or `force`); return its interpreter."""
    if is_current(venv) and not force:
        return venv_python(venv)
    building = venv.with_name(venv.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    print(f"peers: building {venv} from {REQUIREMENTS.name} (pip, PyPI)", file=sys.stderr, flush=True)
    subprocess.run([_base_python(), "-m", "venv", str(building)], check=True)
    pip = [str(venv_python(building)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    (building / _STAMP).write_text(REQUIREMENTS.read_text())
    shutil.rmtree(venv, ignore_errors=True)
    # Only `bin/python -m ...` is used, which works after a rename (the bin/ scripts' shebangs would not).
    building.rename(venv)
    return venv_python(venv)


def installed_versions(venv: Path = VENV) -> dict[str, str]:
    """Exact versions installed in the venv, for every distribution requirements.txt names."""
    names = [
        line.split("==")[0].strip()
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    script = "import importlib.metadata as m, json, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    out = subprocess.run([str(venv_python(venv)), "-c", script, *names], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: build (or rebuild with --force) the peers' venv and print what is installed."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers.install", description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if current")
    args = parser.parse_args(argv)
    python = ensure_venv(force=args.force)
    print(python)
    for name, version in installed_versions().items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
