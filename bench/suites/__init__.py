"""pytest-benchmark suites of the compiled kernels and of one ADMM iteration."""
