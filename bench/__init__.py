"""Benchmarks of the pipeline against naive baselines measured in the same run."""
