"""Holding chosen emails at the SMTP server: DATA for a subject is answered only
once the test takes that subject out of ``held``. Keeps a worker thread busy for
exactly as long as a test needs (give the worker a long ``MAIL_TIMEOUT``)."""

from __future__ import annotations

import asyncio
import email


def hold(recorder, held: set[str]) -> None:
    answer = recorder.handle_DATA

    async def handle_DATA(server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content)
        while message["Subject"] in held:
            await asyncio.sleep(0.05)
        return await answer(server, session, envelope)

    recorder.handle_DATA = handle_DATA
