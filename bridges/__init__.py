"""Schrödinger bridges on the shared SDE core."""
