"""A fast SMTP sink in a process of its own, shared by both sides of a
comparison: it accepts every message and counts messages and connections (which
shows whether a worker reused its connections), and when the first and last
message arrived.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import sys
import time

from bench.common import HOST, free_port, wait_for


class SmtpSink:
    """A minimal SMTP server in a process of its own that accepts every message
    and counts messages and connections; first and last arrival are wall-clock
    times (``time.time()``), comparable with the other processes' and the
    database's. Both sides of a comparison send to the same sink."""

    def __init__(self):
        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self._messages = context.RawValue("q", 0)
        self._connections = context.RawValue("q", 0)
        self._first = context.RawValue("d", 0.0)
        self._last = context.RawValue("d", 0.0)
        self._ready = context.Event()
        self._process = context.Process(
            target=_serve_smtp,
            args=(
                self.port,
                self._messages,
                self._connections,
                self._first,
                self._last,
                self._ready,
            ),
            daemon=True,
        )

    def start(self) -> SmtpSink:
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")
        return self

    @property
    def messages(self) -> int:
        return self._messages.value

    @property
    def connections(self) -> int:
        return self._connections.value

    @property
    def first(self) -> float:
        return self._first.value

    @property
    def last(self) -> float:
        return self._last.value

    def reset(self) -> None:
        """Start counting again (after a warm-up)."""
        self._messages.value = self._connections.value = 0
        self._first.value = self._last.value = 0.0

    def wait_for(self, count: int, *, timeout: float) -> float:
        """Wait until ``count`` messages arrived; the last one's arrival time."""
        wait_for(
            lambda: self.messages >= count,
            timeout=timeout,
            interval=0.02,
            what=f"{count} emails at the sink (got {self.messages})",
        )
        return self.last

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(10)


def _serve_smtp(port, messages, connections, first, last, ready) -> None:
    async def session(reader, writer):
        connections.value += 1
        writer.write(b"220 sink ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                    await reader.readuntil(b"\r\n.\r\n")
                    now = time.time()
                    if not messages.value:
                        first.value = now
                    last.value = now
                    messages.value += 1
                    writer.write(b"250 OK\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:  # HELO, MAIL, RCPT, RSET, NOOP
                    writer.write(b"250 OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(
            session, HOST, port, limit=64 * 1024 * 1024, backlog=512
        )
        ready.set()
        async with server:
            await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(main())


# --- job completions from baseline workers -----------------------------------------------
