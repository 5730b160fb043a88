"""SMTP over TLS is verified: against a real TLS SMTP server on loopback (aiosmtpd),
with STARTTLS (MAIL_USE_TLS) and with TLS from the first byte (MAIL_USE_SSL),
presenting a good, a self-signed and a wrong-name certificate."""

from __future__ import annotations

import logging
import smtplib

import pytest
from flask_mail import Message

from app import create_app, emails, smtp
from app.db import db
from app.jobs.errors import PermanentError
from app.models import Job
from tests.support.tls import TestCA, TlsSmtpServer, self_signed

USER, PASSWORD = "mailer", "s3cret-smtp-password"
MODES = [pytest.param(False, id="starttls"), pytest.param(True, id="implicit-tls")]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def good(ca):
    return ca.issue("good")


@pytest.fixture(scope="module")
def wrong_name(ca):
    return ca.issue("wrong-name", alt_names="DNS:mail.example.org")


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("self-signed"))


@pytest.fixture()
def serve():
    servers = []

    def serve(certificate, *, implicit):
        servers.append(TlsSmtpServer(certificate, implicit=implicit).start())
        return servers[-1]

    yield serve
    for server in servers:
        server.stop()


@pytest.fixture()
def mail_app(tmp_path):
    """An app sending to ``server`` over TLS with credentials; ``config`` overrides."""
    contexts = []

    def mail_app(server, *, implicit, **config):
        app = create_app(
            {
                "TESTING": True,
                "MAIL_SUPPRESS_SEND": False,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}",
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": server.port,
                "MAIL_USE_TLS": not implicit,
                "MAIL_USE_SSL": implicit,
                "MAIL_USERNAME": USER,
                "MAIL_PASSWORD": PASSWORD,
                "MAIL_TIMEOUT": 5,
                **config,
            }
        )
        context = app.app_context()
        context.push()
        contexts.append(context)
        return app

    yield mail_app
    smtp._drop()
    for context in reversed(contexts):
        context.pop()


def _message() -> Message:
    return Message(subject="s", recipients=["r@example.com"], body="b", sender="a@example.com")


@pytest.mark.parametrize("implicit", MODES)
def test_a_certificate_from_the_configured_ca_for_the_server_is_delivered_to(
    serve, mail_app, ca, good, implicit
):
    server = serve(good, implicit=implicit)
    mail_app(server, implicit=implicit, MAIL_TLS_CA_FILE=str(ca.cert))

    smtp.send(_message())

    assert len(server.recorder.wait_for(1, timeout=5)) == 1
    # the password went to the server once, and only over TLS
    assert server.recorder.logins == [(USER, PASSWORD, True)]


@pytest.mark.parametrize("implicit", MODES)
def test_a_self_signed_certificate_is_refused_before_auth_or_the_message(
    serve, mail_app, untrusted, implicit
):
    server = serve(untrusted, implicit=implicit)
    mail_app(server, implicit=implicit)

    with pytest.raises(smtplib.SMTPException) as raised:
        smtp.send(_message())

    assert isinstance(raised.value, smtp.TLSNotVerified)
    assert "not trusted (self-signed certificate)" in str(raised.value)
    assert PASSWORD not in str(raised.value) and USER not in str(raised.value)
    assert server.recorder.logins == []
    assert server.messages == []
    assert smtp._kept.connection is None


@pytest.mark.parametrize("implicit", MODES)
def test_a_trusted_certificate_for_another_host_name_is_refused_before_auth_or_the_message(
    serve, mail_app, ca, wrong_name, implicit
):
    server = serve(wrong_name, implicit=implicit)
    mail_app(server, implicit=implicit, MAIL_TLS_CA_FILE=str(ca.cert))

    with pytest.raises(smtplib.SMTPException) as raised:
        smtp.send(_message())

    assert isinstance(raised.value, smtp.TLSNotVerified)
    assert "another host name than MAIL_SERVER" in str(raised.value)
    assert "127.0.0.1" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert server.recorder.logins == []
    assert server.messages == []


def test_without_mail_tls_ca_file_only_the_system_cas_are_trusted(serve, mail_app, good):
    server = serve(good, implicit=False)
    mail_app(server, implicit=False)

    with pytest.raises(smtplib.SMTPException) as raised:
        smtp.send(_message())

    assert isinstance(raised.value, smtp.TLSNotVerified)
    assert "set MAIL_TLS_CA_FILE" in str(raised.value)
    assert server.recorder.logins == []
    assert server.messages == []


@pytest.mark.parametrize("implicit", MODES)
def test_mail_tls_verify_0_delivers_to_a_self_signed_server_and_warns_at_start(
    serve, mail_app, untrusted, implicit, caplog, monkeypatch
):
    server = serve(untrusted, implicit=implicit)
    # Another test's logging configuration may have disabled or detached this logger.
    smtp_logger = logging.getLogger("app.smtp")
    monkeypatch.setattr(smtp_logger, "disabled", False)
    monkeypatch.setattr(smtp_logger, "propagate", True)
    caplog.set_level(logging.WARNING, logger="app.smtp")

    mail_app(server, implicit=implicit, MAIL_TLS_VERIFY=False)
    [warning] = [record for record in caplog.records if record.name == "app.smtp"]
    smtp.send(_message())

    assert warning.levelno == logging.WARNING
    assert "MAIL_TLS_VERIFY=0" in warning.getMessage()
    assert f"127.0.0.1:{server.port}" in warning.getMessage()
    assert PASSWORD not in warning.getMessage()
    assert len(server.recorder.wait_for(1, timeout=5)) == 1
    assert server.recorder.logins == [(USER, PASSWORD, True)]


def test_a_verified_setup_logs_no_warning_at_start(serve, mail_app, ca, good, caplog):
    server = serve(good, implicit=False)
    caplog.set_level(logging.WARNING, logger="app.smtp")

    mail_app(server, implicit=False, MAIL_TLS_CA_FILE=str(ca.cert))

    assert [record for record in caplog.records if record.name == "app.smtp"] == []


def test_an_unverified_server_fails_the_attempt_for_a_retry_not_for_good():
    # The operator fixes the certificate or the settings; the retries then deliver.
    assert not issubclass(smtp.TLSNotVerified, PermanentError)
    assert smtp.TLSNotVerified.__name__ not in emails.PERMANENT_ERRORS


@pytest.fixture()
def smtp_server(untrusted):
    """For the shared ``app`` fixture: the server it sends to presents a self-signed certificate."""
    server = TlsSmtpServer(untrusted, implicit=False).start()
    yield server
    server.stop()


def test_an_email_to_an_unverified_server_is_retried_and_never_sends_the_password(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    # Given the app sending with STARTTLS and credentials to a self-signed server
    mail = app.extensions["mail"]
    mail.use_tls, mail.username, mail.password = True, USER, PASSWORD
    response = client.post(
        "/api/emails", json={"to": "kim@example.com", "subject": "Hi", "body": "b"}, headers=user[1]
    )
    assert response.status_code == 202

    # When the worker has made every attempt
    stub_broker.join("emails", fail_fast=False)
    stub_worker.join()

    # Then each attempt failed on TLS, was retried, and nothing reached the server
    with app.app_context():
        job = db.session.get(Job, response.json["job_id"])
        assert (job.status, job.error_type) == ("failed", "TLSNotVerified")
        assert job.attempts == job.max_retries + 1 > 1
        assert "not trusted" in job.error_message and PASSWORD not in job.error_message
    assert smtp_server.recorder.logins == []
    assert smtp_server.messages == []


def test_an_unreadable_mail_tls_ca_file_is_named_in_the_error(serve, mail_app, good, tmp_path):
    server = serve(good, implicit=False)
    missing = tmp_path / "no-such-ca.pem"
    mail_app(server, implicit=False, MAIL_TLS_CA_FILE=str(missing))

    with pytest.raises(smtp.TLSSetupError, match="MAIL_TLS_CA_FILE"):
        smtp.send(_message())

    assert server.recorder.sessions == 0
