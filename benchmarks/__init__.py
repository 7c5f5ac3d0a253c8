"""Benchmarks (not tests): `python -m benchmarks` writes figures to benchmarks/results/; never fails on speed."""
