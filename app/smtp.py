"""Talking to the SMTP server: a connection with a timeout, the mail transaction,
and its replies sorted into those a later attempt may get past and those it cannot.

Flask-Mail 0.10 opens ``smtplib.SMTP(host, port)`` without a timeout, and
Dramatiq's TimeLimit cannot interrupt a blocking read, so a server that accepts
and never answers would hold a worker thread for good. Every socket operation
here waits at most ``MAIL_TIMEOUT`` seconds, and a timeout is an ordinary failed
attempt, retried later; all but one. Once the whole message and its final "."
are written, the server may already have it, and RFC 5321 §4.5.3.2.6 gives it
10 minutes to answer: that reply alone waits ``MAIL_DATA_TIMEOUT``, and when it
never comes the attempt fails with DeliveryUnconfirmed, which is not retried,
since a retry could deliver a second copy.

The transaction is ``smtplib.SMTP.sendmail``'s, step by step, so that the wait
for that reply can have a timeout of its own and a caller can check, right
before DATA, that it may still send (``before_data``).

TLS (``MAIL_USE_TLS``: STARTTLS; ``MAIL_USE_SSL``: TLS from the first byte) is
verified: the server's certificate must chain to the system's CAs, or to
``MAIL_TLS_CA_FILE``, and name ``MAIL_SERVER``; otherwise the attempt fails
before the password or the message is sent. ``MAIL_TLS_VERIFY=0`` turns the
check off, for a relay on loopback, with a warning at every start.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from email.utils import parseaddr

from dramatiq.middleware import TimeLimitExceeded
from flask import Flask, current_app
from flask_mail import (
    BadHeaderError,
    Connection,
    Message,
    email_dispatched,
    sanitize_address,
    sanitize_addresses,
)

from app.jobs.errors import PermanentError

logger = logging.getLogger(__name__)


class RecipientRefused(PermanentError):
    """The SMTP server refused the recipient for good (a 5xx reply): a bad address."""


class MessageRefused(PermanentError):
    """The SMTP server refused the message for good (a 5xx reply)."""


class DeliveryUnconfirmed(PermanentError):
    """The SMTP server received the whole message and never answered its end.

    It may have accepted the message: sending again could deliver a second
    copy, and sending nothing could lose it. Only a person can tell (from the
    recipient, or the server's logs), so the job fails, is not retried and is
    not resent by the schedule; an admin retries it by hand if it never arrived.
    """

    def __init__(self, cause: BaseException):
        super().__init__(
            f"the SMTP server received the whole message but did not answer its end"
            f" ({cause or type(cause).__name__}): it may have the message, so it is not"
            " sent again automatically; an admin must decide, and retry it by hand from"
            " the admin page if it never arrived"
        )


class SMTPTemporaryError(Exception):
    """The SMTP server refused for now; a later attempt may pass."""


class TLSNotVerified(smtplib.SMTPException):
    """The SMTP server's certificate is not trusted, or not for ``MAIL_SERVER``.

    Nothing was sent: not the credentials, not the message. It is not permanent:
    an operator fixes it (the server's certificate, ``MAIL_TLS_CA_FILE`` or
    ``MAIL_SERVER``) and the retries, or a resend, deliver the email."""


class TLSSetupError(smtplib.SMTPException):
    """``MAIL_TLS_CA_FILE`` cannot be read or holds no certificate: an operator's to fix."""


# 5xx replies that a later attempt can get past: authentication required or
# failed, and credentials or TLS that an operator can fix (530, 534, 535, 538),
# and a full mailbox (552, which RFC 5321 says to treat as temporary when it
# means too many recipients, and which mailbox owners clear).
FIXABLE_5XX = frozenset({530, 534, 535, 538, 552})


def tls_context(config) -> ssl.SSLContext:
    """The context for STARTTLS and implicit TLS: the default one (certificate
    and host name checked), trusting ``MAIL_TLS_CA_FILE`` instead of the system's
    CAs when it is set; ``MAIL_TLS_VERIFY=0`` checks neither."""
    ca_file = config.get("MAIL_TLS_CA_FILE") or None
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        raise TLSSetupError(
            f"MAIL_TLS_CA_FILE {ca_file!r} cannot be used as a CA bundle ({reason})"
        ) from error
    if not config.get("MAIL_TLS_VERIFY", True):
        context.check_hostname = False  # must be off before CERT_NONE is allowed
        context.verify_mode = ssl.CERT_NONE
    return context


def _unverified(error: ssl.SSLCertVerificationError, server: str, port: int) -> str:
    """What failed, for the operator: the server's certificate, never a credential."""
    where = f"the SMTP server {server}:{port}"
    detail = error.verify_message or error.reason or str(error)
    if error.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return (
            f"TLS not verified: {where} presented a certificate for another host name"
            f" than MAIL_SERVER ({detail}); nothing was sent. Set MAIL_SERVER to a name"
            " the certificate holds, or give the server a certificate for it"
        )
    return (
        f"TLS not verified: {where} presented a certificate that is not trusted"
        f" ({detail}); nothing was sent. Give the server a certificate from a trusted"
        " CA, or set MAIL_TLS_CA_FILE to the CA that signed it"
    )


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH = 62, 64


def warn_if_unverified(app: Flask) -> None:
    """Called by ``create_app``: every process that may send mail says, as it
    starts, that it does not check the SMTP server's certificate."""
    if app.config.get("MAIL_TLS_VERIFY", True):
        return
    logger.warning(
        "MAIL_TLS_VERIFY=0: the SMTP server's TLS certificate and host name are not"
        " checked, so anyone on the path to %s:%s can read the SMTP password and every"
        " email; use it only for a relay on loopback",
        app.config.get("MAIL_SERVER"),
        app.config.get("MAIL_PORT"),
    )


class TimedConnection(Connection):
    """Flask-Mail's connection, with ``MAIL_TIMEOUT`` on every socket operation
    and the mail transaction of ``_transaction`` in place of ``sendmail``."""

    def configure_host(self) -> smtplib.SMTP:
        """Connect, start TLS and log in; TLS is checked before AUTH is sent."""
        timeout = current_app.config["MAIL_TIMEOUT"]
        server, port = self.mail.server, self.mail.port
        tls = tls_context(current_app.config) if self.mail.use_ssl or self.mail.use_tls else None
        host: smtplib.SMTP
        try:
            if self.mail.use_ssl:
                # SMTP_SSL checks the certificate against the host it was given.
                host = smtplib.SMTP_SSL(server, port, timeout=timeout, context=tls)
            else:
                host = smtplib.SMTP(server, port, timeout=timeout)
        except ssl.SSLCertVerificationError as error:
            raise TLSNotVerified(_unverified(error, server, port)) from error
        try:
            host.set_debuglevel(int(self.mail.debug))
            if self.mail.use_tls:
                try:
                    host.starttls(context=tls)
                except ssl.SSLCertVerificationError as error:
                    raise TLSNotVerified(_unverified(error, server, port)) from error
            if self.mail.username and self.mail.password:
                host.login(self.mail.username, self.mail.password)
        except BaseException:
            host.close()
            raise
        return host

    def send(
        self,
        message: Message,
        envelope_from: str | tuple[str, str] | None = None,
        *,
        before_data: Callable[[], object] | None = None,
    ) -> None:
        """Flask-Mail's ``Connection.send``, line for line but for the
        transaction: the same checks, envelope, bytes, signal and reconnection
        after ``MAIL_MAX_EMAILS``. Without a host (``MAIL_SUPPRESS_SEND``)
        ``before_data`` is still called, so a caller's check holds there too."""
        assert message.send_to, "No recipients have been added"
        assert message.sender, (
            "The message does not specify a sender and a default sender has not been configured"
        )
        if message.has_bad_headers():
            raise BadHeaderError
        if message.date is None:
            message.date = time.time()
        if self.host is not None:
            _transaction(
                self.host,
                sanitize_address(envelope_from or message.sender),
                list(sanitize_addresses(message.send_to)),
                message.as_bytes(),
                message.mail_options,
                message.rcpt_options,
                before_data=before_data,
            )
        elif before_data is not None:
            before_data()
        email_dispatched.send(
            # The app itself, not its proxy, as Flask-Mail sends it.
            current_app._get_current_object(),  # type: ignore[attr-defined]  # LocalProxy's method
            message=message,
        )
        self.num_emails += 1
        if self.num_emails == self.mail.max_emails:
            self.num_emails = 0
            if self.host:
                self.host.quit()
                self.host = self.configure_host()


def _transaction(
    host: smtplib.SMTP,
    sender: str,
    recipients: list[str],
    content: bytes,
    mail_options: Sequence[str],
    rcpt_options: Sequence[str],
    *,
    before_data: Callable[[], object] | None,
) -> None:
    """``smtplib.SMTP.sendmail`` (Python 3.11), with ``before_data`` called
    between the last RCPT and DATA, and ``_data`` for DATA. It raises what
    sendmail raises, for the same replies: SMTPSenderRefused,
    SMTPRecipientsRefused (every recipient refused, or a 421), SMTPDataError;
    recipients refused among accepted ones are ignored, as Flask-Mail ignores
    sendmail's answer."""
    host.ehlo_or_helo_if_needed()
    options = []
    if host.does_esmtp:
        if host.has_extn("size"):
            options.append(f"size={len(content)}")
        options.extend(mail_options)
    code, reply = host.mail(sender, options)
    if code != 250:
        _close_or_reset(host, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for recipient in recipients:
        code, reply = host.rcpt(recipient, rcpt_options)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
        if code == 421:
            host.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        _reset(host)
        raise smtplib.SMTPRecipientsRefused(refused)
    if before_data is not None:
        try:
            before_data()
        except BaseException:
            _reset(host)  # the caller drops the connection as after any error
            raise
    code, reply = _data(host, content)
    if code != 250:
        _close_or_reset(host, code)
        raise smtplib.SMTPDataError(code, reply)


def _data(host: smtplib.SMTP, content: bytes) -> tuple[int, bytes]:
    """``smtplib.SMTP.data`` for bytes (which it sends as they are, line ends
    included, with leading dots doubled), waiting ``MAIL_DATA_TIMEOUT`` for the
    reply to the final "." and raising DeliveryUnconfirmed when none comes."""
    host.putcmd("data")
    code, reply = host.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    stuffed = re.sub(rb"(?m)^\.", b"..", content)
    if stuffed[-2:] != b"\r\n":
        stuffed += b"\r\n"
    host.send(stuffed + b".\r\n")
    # Written whole: from here on the server may have the message.
    assert host.sock is not None  # connected: the message was just sent on it
    host.sock.settimeout(current_app.config["MAIL_DATA_TIMEOUT"])
    try:
        return host.getreply()
    except (smtplib.SMTPServerDisconnected, TimeLimitExceeded) as error:
        # A timeout or a dropped connection (getreply reports both as
        # SMTPServerDisconnected), or the actor's time limit, which Python
        # delivers only once the blocking read returns: no reply either way.
        raise DeliveryUnconfirmed(error) from error
    finally:
        if host.sock is not None:  # getreply closes it on an error
            host.sock.settimeout(host.timeout)


def _reset(host: smtplib.SMTP) -> None:
    """RSET, whatever comes of it: the connection is dropped next anyway."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        host.rset()


def _close_or_reset(host: smtplib.SMTP, code: int) -> None:
    """What sendmail does after a refusal: a 421 means the server is closing."""
    if code == 421:
        host.close()
    else:
        _reset(host)


class _Kept(threading.local):
    """This thread's open connection, and when it was last used."""

    connection: TimedConnection | None = None
    last_used: float = 0.0


_kept = _Kept()
# A kept connection idle longer than this is checked with NOOP before use.
CHECK_AFTER_IDLE_S = 1.0


def send(message: Message, *, before_data: Callable[[], object] | None = None) -> None:
    """Send one message, raising RecipientRefused or MessageRefused for a
    refusal no retry can change and SMTPTemporaryError for one it may.
    Connection errors and timeouts propagate as they are, and are retried;
    but once the whole message was written, a missing reply is
    DeliveryUnconfirmed, which is not.

    ``before_data`` is called once the server has accepted the sender and the
    recipients, right before DATA: the last moment at which nothing has been
    delivered. If it raises, the transaction is reset, the connection dropped,
    and its exception propagates as it is.

    Each worker thread keeps its connection open for its next message, for up
    to ``MAIL_KEEPALIVE_S`` idle seconds (0: a connection per message): opening
    one costs more than sending a small email. After any error the connection
    is dropped, so a retry starts on a fresh one."""
    _refuse_non_ascii_recipients(message)
    mail = current_app.extensions["mail"]
    if mail.suppress:  # MAIL_SUPPRESS_SEND: Flask-Mail records instead of sending
        with TimedConnection(mail) as connection:
            connection.send(message, before_data=before_data)
        return
    connection = _connection()
    try:
        connection.send(message, before_data=before_data)
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


def _refuse_non_ascii_recipients(message: Message) -> None:
    """An address whose local part is not ASCII can only travel with SMTPUTF8
    (RFC 6531), which this client does not speak: no attempt could ever send
    it, so it is refused for good before connecting. (A non-ASCII domain is
    fine: it goes out in its IDNA form.)"""
    for recipient in message.send_to:
        address = recipient[1] if isinstance(recipient, tuple) else parseaddr(recipient)[1]
        local_part = address.rpartition("@")[0] or address
        if not local_part.isascii():
            raise RecipientRefused(
                f"{address}: its local part (before the @) is not ASCII, which needs"
                " SMTPUTF8, and this mail client does not support it"
            )


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
        return connection.host is not None and connection.host.noop()[0] == 250
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
