"""Standalone measuring scripts: ``python -m bench.scripts.NAME`` from the repository root."""
