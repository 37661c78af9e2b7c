"""Benchmarks, measuring scripts and studies of admm (see bench/README.md); run from the repository root."""
