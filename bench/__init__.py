"""Benchmarks and simulations; run each with `python -m bench.<name>` from the repository root."""
