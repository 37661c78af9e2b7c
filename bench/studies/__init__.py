"""Studies with their results: ``bench.studies.accuracy`` (docs/accuracy-study.md)."""
