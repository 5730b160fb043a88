"""The message Flask-Mail sends for an Email row, built so that no header can
be injected even when a value that skipped the API's validation holds a line
break (including the ones only ``str.splitlines`` knows: \\x0b, \\x0c, \\x1c-\\x1e,
\\x85, \\u2028, \\u2029).

Flask-Mail's own builder checks only CR and LF. Here the bytes come from the
``email`` package's modern policy, which refuses any header value that
``splitlines`` would split, and before that every header value is checked:
a recipient with such a character is refused for good; in a subject each one
becomes a space, so the message still goes out, in one header line."""

from __future__ import annotations

import mimetypes
import re
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path

from flask_mail import Message

from app import text
from app.jobs.errors import PermanentError
from app.models import Email

POLICY = policy.SMTP.clone(raise_on_defect=True)
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class UnsafeHeader(PermanentError):
    """A recipient or sender holds a character that could start a new header line."""


def build(email: Email, attachment: Path | None = None) -> Message:
    """What ``mail.send`` takes for ``email``, with ``attachment`` (a file) attached."""
    message = StrictMessage(
        subject=_LINE_BREAKING.sub(" ", email.subject),
        recipients=[_address(email.to)],
        body=email.body,
        html=email.html,
    )
    message.msgId = _address(email.message_id)
    if attachment is not None:
        maintype = mimetypes.guess_type(attachment.name)[0] or "application/octet-stream"
        message.attach(attachment.name, maintype, attachment.read_bytes())
    return message


def _address(value: str | tuple[str, str]) -> str:
    """An address header's value; Flask-Mail also takes (name, address) pairs."""
    if isinstance(value, tuple):
        value = formataddr(value)
    if not text.single_line(value):
        raise UnsafeHeader(f"refusing a header value with a line break: {value!r}")
    return value


class StrictMessage(Message):
    """A Flask-Mail message whose bytes the ``email`` package's modern policy
    writes (Flask-Mail's own ``_message`` uses the legacy API)."""

    def as_bytes(self) -> bytes:
        return self.to_email().as_bytes()

    def as_string(self) -> str:
        return self.to_email().as_string()

    def to_email(self) -> EmailMessage:
        message = EmailMessage(policy=POLICY)
        message["From"] = _address(self.sender)
        message["To"] = ", ".join(_address(to) for to in self.recipients)
        message["Subject"] = self.subject or ""
        message["Date"] = formatdate(self.date, localtime=False)
        message["Message-ID"] = self.msgId
        message.set_content(self.body or "")
        if self.html:
            message.add_alternative(self.html, subtype="html")
        for item in self.attachments:
            maintype, _, subtype = item.content_type.partition("/")
            message.add_attachment(
                item.data, maintype=maintype, subtype=subtype, filename=item.filename
            )
        return message
