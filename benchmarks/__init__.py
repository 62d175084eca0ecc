"""Benchmarks: ratios against raw libraries measured in the same run (`make bench`)."""
