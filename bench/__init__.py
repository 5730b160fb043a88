"""Benchmarks (``make bench``); each script prints its figures beside a baseline
measured in the same run. Shared helpers: ``bench/common.py``."""
