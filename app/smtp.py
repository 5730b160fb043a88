"""Talking to the SMTP server: a connection with a timeout, and its replies sorted
into those a later attempt may get past and those it cannot.

Flask-Mail 0.10 opens ``smtplib.SMTP(host, port)`` without a timeout, and
Dramatiq's TimeLimit cannot interrupt a blocking read, so a server that accepts
and never answers would hold a worker thread for good. Every socket operation
here waits at most ``MAIL_TIMEOUT`` seconds; a timeout is an ordinary failed
attempt, retried later.
"""

from __future__ import annotations

import smtplib
import threading
import time

from flask import current_app
from flask_mail import Connection, Message

from app.jobs.errors import PermanentError


class RecipientRefused(PermanentError):
    """The SMTP server refused the recipient for good (a 5xx reply): a bad address."""


class MessageRefused(PermanentError):
    """The SMTP server refused the message for good (a 5xx reply)."""


class SMTPTemporaryError(Exception):
    """The SMTP server refused for now; a later attempt may pass."""


# 5xx replies that a later attempt can get past: authentication required or
# failed, and credentials or TLS that an operator can fix (530, 534, 535, 538),
# and a full mailbox (552, which RFC 5321 says to treat as temporary when it
# means too many recipients, and which mailbox owners clear).
FIXABLE_5XX = frozenset({530, 534, 535, 538, 552})


class TimedConnection(Connection):
    """Flask-Mail's connection, with ``MAIL_TIMEOUT`` on every socket operation."""

    def configure_host(self) -> smtplib.SMTP:
        timeout = current_app.config["MAIL_TIMEOUT"]
        factory = smtplib.SMTP_SSL if self.mail.use_ssl else smtplib.SMTP
        host = factory(self.mail.server, self.mail.port, timeout=timeout)
        host.set_debuglevel(int(self.mail.debug))
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


class _Kept(threading.local):
    """This thread's open connection, and when it was last used."""

    connection: TimedConnection | None = None
    last_used: float = 0.0


_kept = _Kept()
# A kept connection idle longer than this is checked with NOOP before use.
CHECK_AFTER_IDLE_S = 1.0


def send(message: Message) -> None:
    """Send one message, raising RecipientRefused or MessageRefused for a
    refusal no retry can change and SMTPTemporaryError for one it may.
    Connection errors and timeouts propagate as they are, and are retried.

    Each worker thread keeps its connection open for its next message, for up
    to ``MAIL_KEEPALIVE_S`` idle seconds (0: a connection per message): opening
    one costs more than sending a small email. After any error the connection
    is dropped, so a retry starts on a fresh one."""
    mail = current_app.extensions["mail"]
    if mail.suppress:  # MAIL_SUPPRESS_SEND: Flask-Mail records instead of sending
        with TimedConnection(mail) as connection:
            connection.send(message)
        return
    connection = _connection()
    try:
        connection.send(message)
    except smtplib.SMTPRecipientsRefused as error:
        _drop()
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(_permanent(code) for code in codes):
            raise RecipientRefused(_describe(error.recipients)) from error
        raise SMTPTemporaryError(_describe(error.recipients)) from error
    except smtplib.SMTPResponseException as error:
        _drop()
        reply = f"{error.smtp_code} {_text(error.smtp_error)}"
        if _permanent(error.smtp_code):
            raise MessageRefused(reply) from error
        raise SMTPTemporaryError(reply) from error
    except BaseException:
        _drop()
        raise
    if current_app.config["MAIL_KEEPALIVE_S"] > 0:
        _kept.last_used = time.monotonic()
    else:
        _drop()


def _connection() -> TimedConnection:
    """The thread's kept connection if it is still good, else a new one."""
    connection, idle = _kept.connection, time.monotonic() - _kept.last_used
    if connection is not None:
        if idle > current_app.config["MAIL_KEEPALIVE_S"]:
            _drop()
        elif idle > CHECK_AFTER_IDLE_S and not _alive(connection):
            _drop(quit=False)
        else:
            return connection
    connection = TimedConnection(current_app.extensions["mail"])
    connection.host = connection.configure_host()
    _kept.connection = connection
    return connection


def _alive(connection: TimedConnection) -> bool:
    try:
        return connection.host.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def _drop(*, quit: bool = True) -> None:
    connection, _kept.connection = _kept.connection, None
    if connection is None or connection.host is None:
        return
    try:
        if quit:
            connection.host.quit()
        else:
            connection.host.close()
    except (smtplib.SMTPException, OSError):
        connection.host.close()


def _permanent(code: int) -> bool:
    return 500 <= code < 600 and code not in FIXABLE_5XX


def _describe(recipients: dict) -> str:
    return "; ".join(f"{to}: {code} {_text(reply)}" for to, (code, reply) in recipients.items())


def _text(reply) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
