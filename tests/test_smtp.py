"""app/smtp.py against a real SMTP server: kept connections, timeouts, replies."""

from __future__ import annotations

import pytest
from flask_mail import Message

from app import smtp
from tests.support.proxy import TcpProxy


def _message(n: int = 0) -> Message:
    return Message(subject=f"s{n}", recipients=["r@example.com"], body="b", sender="a@example.com")


@pytest.fixture()
def sending(app):
    with app.app_context():
        yield
        smtp._drop()


def test_a_thread_keeps_its_connection_for_the_next_email(app, smtp_server, sending):
    for n in range(3):
        smtp.send(_message(n))
    assert len(smtp_server.recorder.wait_for(3)) == 3
    assert smtp_server.recorder.sessions == 1


def test_keepalive_0_opens_a_connection_per_email(app, smtp_server, sending):
    app.config["MAIL_KEEPALIVE_S"] = 0
    for n in range(3):
        smtp.send(_message(n))
    assert len(smtp_server.recorder.wait_for(3)) == 3
    assert smtp_server.recorder.sessions == 3


def test_a_kept_connection_the_server_dropped_is_replaced(
    app, smtp_server, sending, monkeypatch
):
    proxy = TcpProxy("127.0.0.1", smtp_server.port).start()
    app.config["MAIL_PORT"] = proxy.port
    app.extensions["mail"].port = proxy.port
    try:
        smtp.send(_message(1))
        # The connection is dropped on the server's side while the thread keeps it
        proxy.cut(0.1)
        monkeypatch.setattr(smtp, "CHECK_AFTER_IDLE_S", 0)
        smtp.send(_message(2))
    finally:
        proxy.stop()
    assert len(smtp_server.recorder.wait_for(2)) == 2
    assert smtp_server.recorder.sessions == 2


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 no such user", smtp.MessageRefused),
        ("554 5.7.1 rejected", smtp.MessageRefused),
        ("451 4.3.0 try later", smtp.SMTPTemporaryError),
        ("552 5.2.2 mailbox full", smtp.SMTPTemporaryError),
        ("535 5.7.8 authentication failed", smtp.SMTPTemporaryError),
        ("530 5.7.0 authentication required", smtp.SMTPTemporaryError),
    ],
)
def test_replies_a_later_attempt_can_get_past_are_temporary(
    app, smtp_server, sending, reply, error
):
    smtp_server.recorder.reply = reply
    with pytest.raises(error):
        smtp.send(_message())
    # and the connection that saw the refusal is not kept
    assert smtp._kept.connection is None
