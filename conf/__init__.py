"""Hydra configs of dlfoundations, shipped as package data (see pyproject.toml)."""
