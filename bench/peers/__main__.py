"""`python -m bench.peers [--quick|--full] [--json PATH]`: see `bench.peers`."""

import sys

from bench.common import bench_main
from bench.peers import run

if __name__ == "__main__":
    sys.exit(bench_main("peers", run))
