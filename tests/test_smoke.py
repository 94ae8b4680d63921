import subprocess
import sys

import afactors


def test_module_prints_its_version() -> None:
    out = subprocess.run([sys.executable, "-m", "afactors", "--version"], capture_output=True, text=True, check=True)
    assert afactors.__version__ in out.stdout
