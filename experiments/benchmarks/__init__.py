"""Timed comparisons against peers, measured in the same run: ``python -m experiments.benchmarks``."""
