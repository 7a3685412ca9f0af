"""Reproducible experiments: ``python -m experiments run NAME``."""
