"""A real SMTP server (aiosmtpd) that records what it accepts and can be told to
refuse, to stall, to keep a message it answers late, or to stop listening."""

from __future__ import annotations

import asyncio
import email
import threading
from email.message import Message

from aiosmtpd.controller import Controller

from tests.support.services import free_port


class Recorder:
    def __init__(self):
        self.messages: list[Message] = []
        self.arrived = threading.Condition()
        self.reply: str | None = None  # e.g. "451 try later": refuse the message
        self.rcpt_reply: str | None = None  # e.g. "550 no such user": refuse the recipient
        self.delay_s = 0.0  # seconds to wait before answering DATA: a slow server
        # True: record the message as soon as its content arrived, then wait
        # ``delay_s`` and answer, as a server that delivers and answers late does.
        # False: a client gone before the answer gets nothing recorded.
        self.keep_when_late = False
        self.sessions = 0  # greetings (EHLO/HELO) received: one per connection

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.keep_when_late:
            # Kept before the wait: aiosmtpd cancels this handler when the client goes.
            self._record(envelope)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.reply is not None:
            return self.reply
        if self.keep_when_late:
            return "250 OK"
        if server.transport is None or server.transport.is_closing():
            return "421 the client went away"  # no 250 was sent: not accepted
        self._record(envelope)
        return "250 OK"

    def _record(self, envelope) -> None:
        with self.arrived:
            self.messages.append(
                email.message_from_bytes(envelope.original_content or envelope.content)
            )
            self.arrived.notify_all()

    def message_ids(self) -> list[str]:
        return [message["Message-ID"] for message in self.messages]

    def wait_for(self, count: int, timeout: float = 20) -> list[Message]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)


class SmtpServer:
    def __init__(self):
        self.port = free_port()
        self.recorder = Recorder()
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Message]:
        return list(self.recorder.messages)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller._thread is not None:  # stopping twice would raise
            self.controller.stop()
