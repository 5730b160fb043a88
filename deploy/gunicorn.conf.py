"""Gunicorn settings for the web process:
``gunicorn -c deploy/gunicorn.conf.py "app:create_app()"``.

For a real site: run it behind nginx (deploy/nginx/jobsapp.conf) on 127.0.0.1, set
``WEB_CONCURRENCY`` to about two per core, and keep ``timeout`` above the slowest
request (exports run on workers, so requests are short).
"""

import os

bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 30
# SIGTERM: requests in flight get this long to finish (systemd's TimeoutStopSec and
# compose's stop_grace_period for the web are longer).
graceful_timeout = 20
accesslog = "-"
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
