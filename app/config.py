"""Settings, read from the environment in one place.

Every variable is optional, with the defaults below (the README lists them);
tests pass overrides to ``create_app(config)`` instead of touching ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"

_INTS = {
    "MAIL_PORT": 8025,
    "EXPORT_ATTACH_MAX_BYTES": 5 * 1024 * 1024,
    "EXPORT_LINK_TTL_S": 7 * 24 * 3600,
    "EMAIL_MAX_RETRIES": 5,
    "EXPORT_MAX_RETRIES": 3,
    "RETRY_MIN_BACKOFF_MS": 15_000,
    "RETRY_MAX_BACKOFF_MS": 3_600_000,
    "RESEND_INTERVAL_S": 600,
    "EMAIL_RESEND_MAX_ROUNDS": 3,
    "CLEANUP_INTERVAL_S": 3600,
    "JOB_RETENTION_DAYS": 30,
    "FAILED_JOB_RETENTION_DAYS": 90,
    "AUDIT_RETENTION_DAYS": 365,
    "RELAY_INTERVAL_S": 10,
    "API_TOKEN_TTL_DAYS": 90,
    # How long a scheduler's lease lasts without renewal (renewed every third of it).
    "SCHEDULER_LEASE_S": 30,
    # How long a worker process's lease on its running jobs lasts without renewal
    # (renewed every third of it): a dead worker's jobs are taken over after this.
    "JOB_LEASE_S": 60,
    # Seconds an SMTP connection may wait for the server before the attempt fails.
    "MAIL_TIMEOUT": 30,
    # Seconds to wait for the reply to the end of DATA, by when the server may
    # have the whole message; RFC 5321 §4.5.3.2.6 asks for 10 minutes.
    "MAIL_DATA_TIMEOUT": 600,
    # Seconds a worker thread keeps its SMTP connection open for the next email
    # (0: a new connection for every email).
    "MAIL_KEEPALIVE_S": 30,
    # Quorum queues only: deliveries of one message that may end with its consumer
    # gone (a worker that crashed or was killed) before it is dead-lettered.
    "BROKER_DELIVERY_LIMIT": 5,
    # Per-user quotas (app/quotas.py); 0: no limit.
    "USER_EMAILS_PER_HOUR": 1000,
    "USER_EXPORTS_PER_DAY": 20,
    "USER_EXPORT_BYTES": 1024**3,
    "EMAIL_MAX_BODY_BYTES": 256 * 1024,
}
_STRINGS = {
    "DATABASE_URL": f"sqlite:///{INSTANCE / 'app.db'}",
    "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_DEFAULT_SENDER": "noreply@localhost",
    "EXPORT_DIR": str(INSTANCE / "exports"),
    # Where users reach the web process; the base of links in emails.
    "PUBLIC_URL": "http://127.0.0.1:5000",
    "METRICS_TOKEN": None,
    # A CA bundle the SMTP server's certificate must chain to (else the system's CAs).
    "MAIL_TLS_CA_FILE": None,
    # The proxies trusted for X-Forwarded-* (gunicorn's own variable, as
    # deploy/gunicorn.conf.py reads it): the sign-in throttle then counts the
    # client that proxy saw rather than the proxy.
    "FORWARDED_ALLOW_IPS": "127.0.0.1",
}
_BOOLS = {"MAIL_USE_TLS": False, "MAIL_USE_SSL": False, "MAIL_TLS_VERIFY": True}
# Settings with a fixed set of values; the first one is the default.
_CHOICES = {
    "BROKER_QUEUE_TYPE": ("classic", "quorum"),
    "LOG_FORMAT": ("text", "json"),
}


# Sessions, CSRF tokens and download links are signed with it: short keys are guessable.
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(ValueError):
    """An environment variable holds a value the application cannot use."""


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _parse_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _sqlite_relative_to_root(url: str) -> str:
    """``sqlite:///instance/app.db`` means relative to the repository root,
    whatever directory a process was started from."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        path = url[len(prefix) :]
        if not path.startswith(":memory:"):
            return prefix + str(ROOT / path)
    return url


def ensure_instance_dir() -> None:
    """``instance/`` holds the secret key, the demo password and the SQLite
    database: only its owner may enter it."""
    INSTANCE.mkdir(mode=0o700, parents=True, exist_ok=True)
    if INSTANCE.stat().st_mode & 0o077:
        INSTANCE.chmod(0o700)


def write_private(path: Path, content: str) -> bool:
    """Write ``content`` to ``path`` (mode 0600) whole or not at all: into a
    temporary file, then linked into place. Returns False, writing nothing,
    when ``path`` exists already (another process came first)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)  # unlike rename, never replaces what is there
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def check_secret_key(key: str | None, source: str) -> str:
    if not key or len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"the secret key from {source} is empty or shorter than {MIN_SECRET_KEY_LENGTH}"
            " characters; set a longer SECRET_KEY"
            + (f", or delete {source} to have one generated" if source != "SECRET_KEY" else "")
        )
    return key


def secret_key() -> str:
    """Generated once and kept in ``instance/`` so that sessions and signed
    links survive restarts and are shared by web and worker processes. When two
    processes start at once, the first one's key wins."""
    path = INSTANCE / "secret_key"
    if not path.exists():
        ensure_instance_dir()
        write_private(path, secrets.token_hex(32))
    return check_secret_key(path.read_text().strip(), str(path))


def from_env(environ: dict[str, str] | None = None) -> dict:
    """All settings as a dict of Flask config keys."""
    env = os.environ if environ is None else environ
    settings: dict = {}
    for name, text in _STRINGS.items():
        settings[name] = env.get(name) or text
    for name, number in _INTS.items():
        settings[name] = _parse_int(name, env[name]) if env.get(name) else number
    for name, flag in _BOOLS.items():
        settings[name] = _parse_bool(name, env[name]) if env.get(name) else flag
    for name, choices in _CHOICES.items():
        value = (env.get(name) or choices[0]).strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {env[name]!r}")
        settings[name] = value
    settings["DATABASE_URL"] = _sqlite_relative_to_root(settings["DATABASE_URL"])
    if settings["RETRY_MIN_BACKOFF_MS"] > settings["RETRY_MAX_BACKOFF_MS"]:
        raise ConfigError("RETRY_MIN_BACKOFF_MS must not exceed RETRY_MAX_BACKOFF_MS")
    # None until create_app fills it in with ``secret_key()``: reading settings
    # (as deploy/check_rabbitmq.py does) must not write files.
    settings["SECRET_KEY"] = env.get("SECRET_KEY") or None
    return settings
