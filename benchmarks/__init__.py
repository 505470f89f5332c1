"""mockpoeti's benchmark suite: `python -m benchmarks` (or `python benchmarks/run.py`).

Each section measures mockpoeti against a bare aiohttp reference server
(`benchmarks/reference.py`) started and loaded in the same run, or against an
absolute figure, and reports a table with PASS/FAIL per target (issue 5).
Servers and load generators run as separate processes on 127.0.0.1; the load
generator is wrk when it is installed, else `benchmarks/load.py` (aiohttp's
client). `--quick` shrinks every section to a few seconds for the test suite.
"""
