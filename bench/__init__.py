"""Benchmarks. Each `bench/<name>.py` runs alone (`.venv/bin/python bench/<name>.py`), starts its own
sandbox, prints progress on stderr and its results as JSON lines, the last lines of stdout."""
