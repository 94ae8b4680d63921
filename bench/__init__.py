"""afactors benchmarks: `python -m bench [--quick|--full] [--json PATH]` runs them all.

Every benchmark module `bench/<name>.py` follows the convention in `bench.common`.
"""
