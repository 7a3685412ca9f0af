"""Diffusion models and diffusion samplers, built on thermo's SDEs."""
