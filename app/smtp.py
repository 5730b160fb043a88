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


def send(message: Message) -> None:
    """Send one message, raising RecipientRefused or MessageRefused for a
    refusal no retry can change and SMTPTemporaryError for one it may.
    Connection errors and timeouts propagate as they are, and are retried."""
    try:
        with TimedConnection(current_app.extensions["mail"]) as connection:
            connection.send(message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(_permanent(code) for code in codes):
            raise RecipientRefused(_describe(error.recipients)) from error
        raise SMTPTemporaryError(_describe(error.recipients)) from error
    except smtplib.SMTPResponseException as error:
        reply = f"{error.smtp_code} {_text(error.smtp_error)}"
        if _permanent(error.smtp_code):
            raise MessageRefused(reply) from error
        raise SMTPTemporaryError(reply) from error


def _permanent(code: int) -> bool:
    return 500 <= code < 600 and code not in FIXABLE_5XX


def _describe(recipients: dict) -> str:
    return "; ".join(f"{to}: {code} {_text(reply)}" for to, (code, reply) in recipients.items())


def _text(reply) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
