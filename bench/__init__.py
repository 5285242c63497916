"""Benchmarks: each figure next to a baseline measured in the same run on the same machine."""
