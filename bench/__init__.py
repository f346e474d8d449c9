"""greenlight's benchmarks (issue #6, performance). Not tests: they measure, check that what they measured really
happened, and fail loudly otherwise. Entry point: `python -m bench.run --help`; see bench/README.md."""
