"""Loaded by every Python process started with this directory on PYTHONPATH
(``costs.Meter.env``): counts its SQL when ``BENCH_SQL_DIR`` is set."""

import os

if os.environ.get("BENCH_SQL_DIR"):
    from bench import sqlcount

    sqlcount.install(os.environ["BENCH_SQL_DIR"])
