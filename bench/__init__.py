"""Benchmarks: each module measures one scenario through the real HTTP API and
writes its section of bench/RESULTS.md (`python -m bench` runs them all)."""
