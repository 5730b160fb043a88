"""TLS for tests: certificates made with the ``openssl`` command (a test CA, a
certificate it signs for given names, a self-signed one), and a real SMTP
server (aiosmtpd) speaking STARTTLS or TLS from the first byte that records
every AUTH it receives, and whether it came over TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.support.services import free_port, unavailable
from tests.support.smtp import Recorder

# Names a certificate for the loopback server holds.
LOOPBACK_NAMES = "IP:127.0.0.1,DNS:localhost"
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def _openssl(*args: str | Path) -> None:
    if shutil.which("openssl") is None:
        unavailable("the openssl command is not installed, so no test certificate can be made")
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


class TestCA:
    """A certificate authority of the test's own, in ``directory``."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, directory: Path):
        self.directory = directory
        self.cert = directory / "ca.pem"
        self.key = directory / "ca.key"
        _openssl(
            "req", "-x509", *_KEY, "-keyout", self.key, "-out", self.cert, "-days", "2",
            "-subj", "/CN=Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, name: str, alt_names: str = LOOPBACK_NAMES) -> Certificate:
        """A server certificate for ``alt_names`` (subjectAltName syntax), signed by this CA."""
        key, csr = self.directory / f"{name}.key", self.directory / f"{name}.csr"
        cert, extensions = self.directory / f"{name}.pem", self.directory / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName={alt_names}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
        )
        _openssl("req", "-new", *_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        _openssl(
            "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extensions,
        )  # fmt: skip
        return Certificate(cert, key)


def self_signed(directory: Path, alt_names: str = LOOPBACK_NAMES) -> Certificate:
    """A certificate for the right names that nobody vouches for."""
    cert, key = directory / "self-signed.pem", directory / "self-signed.key"
    _openssl(
        "req", "-x509", *_KEY, "-keyout", key, "-out", cert, "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", f"subjectAltName={alt_names}",
    )  # fmt: skip
    return Certificate(cert, key)


class AuthRecorder(Recorder):
    """A Recorder that also keeps every AUTH it was sent: (login, password, over TLS)."""

    def __init__(self):
        super().__init__()
        self.logins: list[tuple[str, str, bool]] = []

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        over_tls = server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((login, password, over_tls))
        return AuthResult(success=True)


class TlsSmtpServer:
    """A real SMTP server on loopback presenting ``certificate``: with STARTTLS
    (required before anything else), or with ``implicit`` TLS from the first byte."""

    def __init__(self, certificate: Certificate, *, implicit: bool = False):
        self.port = free_port()
        self.recorder = AuthRecorder()
        context = certificate.server_context()
        # aiosmtpd counts only STARTTLS as TLS for AUTH; with implicit TLS every
        # byte is encrypted anyway, and ``logins`` records what each AUTH came over.
        options = dict(authenticator=self.recorder.authenticate, auth_require_tls=not implicit)
        if implicit:
            options["ssl_context"] = context
        else:
            options.update(tls_context=context, require_starttls=True)
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **options)

    @property
    def messages(self):
        return list(self.recorder.messages)

    def start(self) -> TlsSmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller._thread is not None:  # stopping twice would raise
            self.controller.stop()
