"""Development SMTP sink: accepts every message on 127.0.0.1:8025 and keeps it as
an ``.eml`` file under ``instance/mail/``. Not for production. ``MAIL_PORT`` and
``MAILSINK_DIR`` move it (the workers send to ``MAIL_PORT`` too)."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent


class SaveToDirectory:
    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(envelope.original_content or envelope.content)
        os.replace(temporary, self.directory / name)  # readers never see a half-written file
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MAIL_PORT") or 8025))
    parser.add_argument(
        "--directory",
        type=Path,
        default=os.environ.get("MAILSINK_DIR") or ROOT / "instance" / "mail",
    )
    options = parser.parse_args()
    controller = Controller(
        SaveToDirectory(options.directory), hostname=options.host, port=options.port
    )
    controller.start()
    print(f"mail sink on {options.host}:{options.port}, saving to {options.directory}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
