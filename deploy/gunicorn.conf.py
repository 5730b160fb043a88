"""Gunicorn settings for the web process:
``gunicorn -c deploy/gunicorn.conf.py "app:create_app()"``.

For a real site: run it behind nginx (deploy/nginx/jobsapp.conf) on 127.0.0.1, set
``WEB_CONCURRENCY`` to about two per core, and keep ``timeout`` above the slowest
request (exports run on workers, so requests are short).

Never expose it directly: a gthread worker reads a request and writes its response
on one of its threads, so a client that promises a body and never sends it, or reads
a download slowly, holds a thread; ``WEB_CONCURRENCY`` x ``GUNICORN_THREADS`` such
clients (16 by default) stop the site. nginx reads every request whole and buffers
every response, so behind it each thread only waits on the app, the database and the
disk: size the threads for that (each may hold one database connection).
"""

import os
import re

from gunicorn.glogging import Logger

bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Requests in flight per worker. Behind nginx a thread is busy only while the app
# works, so 8 covers the database waits of short requests.
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
# A worker that has not reported to the arbiter for this long is killed and replaced.
timeout = 30
# Idle keep-alive connections from nginx wait this long for their next request (in
# the worker's poller, holding no thread); longer than the upstream's
# keepalive_timeout (20 s) in deploy/nginx/jobsapp.conf, so nginx closes first.
keepalive = 30
# SIGTERM: requests in flight get this long to finish (systemd's TimeoutStopSec and
# compose's stop_grace_period for the web are longer).
graceful_timeout = 20
accesslog = "-"


class TokenlessLogger(Logger):
    """The access log without the token of signed download links
    (``/exports/download/<token>``, valid for days): every atom (request line,
    path, referer, raw URI, headers) shows ``/exports/download/-`` instead."""

    LINK = re.compile(r"/exports/download/[^\s?\"]*(\?[^\s\"]*)?")

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: self.LINK.sub("/exports/download/-", value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }


logger_class = TokenlessLogger
# nginx on the same machine sets X-Forwarded-For/-Proto; trust it, and only it.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    # Gunicorn's own error and access logs as one JSON object per line, like the app's.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json"},
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }
