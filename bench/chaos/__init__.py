"""`python -m bench.chaos`: the reliability suite. Each scenario runs real `python -m afactors` processes under a
fault and prints what a client and an operator see. Not part of the default test run (see docs/operations.md,
"What a fault does", for the figures and `--help` for choosing scenarios)."""
