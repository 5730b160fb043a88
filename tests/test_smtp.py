"""app/smtp.py against a real SMTP server: kept connections, timeouts, replies,
the DATA phase and the hook before it."""

from __future__ import annotations

import smtplib

import pytest
from flask_mail import Message

from app import email_queue, emails, smtp
from app.db import db
from app.jobs.errors import PermanentError
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


def test_a_kept_connection_the_server_dropped_is_replaced(app, smtp_server, sending, monkeypatch):
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


def test_body_lines_that_start_with_a_dot_arrive_intact(app, smtp_server, sending):
    body = "first\n.one dot\n..two dots\n.\nlast"
    smtp.send(Message(subject="s", recipients=["r@example.com"], body=body, sender="a@x.org"))
    [received] = smtp_server.recorder.wait_for(1)
    assert received.get_payload(decode=True).decode().splitlines() == body.splitlines()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 no such user", smtp.RecipientRefused),
        ("553 5.1.3 bad address", smtp.RecipientRefused),
        ("450 4.2.1 mailbox busy", smtp.SMTPTemporaryError),
        ("552 5.2.2 mailbox full", smtp.SMTPTemporaryError),
    ],
)
def test_a_refused_recipient_is_permanent_only_for_a_5xx_no_retry_gets_past(
    app, smtp_server, sending, reply, error
):
    smtp_server.recorder.rcpt_reply = reply
    with pytest.raises(error, match=reply.split()[0]):
        smtp.send(_message())
    assert smtp_server.messages == []
    assert smtp._kept.connection is None


class Fenced(Exception):
    """What a check before DATA raises when the attempt may not send."""


def test_before_data_that_raises_sends_nothing_and_its_exception_comes_out(
    app, user, smtp_server, sending
):
    email, _ = email_queue.new_email(user_id=user[0], to="r@example.com", subject="s", body="b")
    db.session.commit()
    fenced = Fenced("the attempt no longer owns its job")
    calls = []

    def before_data():
        calls.append(smtp_server.recorder.sessions)
        raise fenced

    with pytest.raises(Fenced) as raised:
        emails.deliver(email.id, before_data=before_data)
    assert raised.value is fenced
    assert calls == [1]  # called once, on a connection that had greeted the server
    assert smtp_server.messages == []
    assert smtp._kept.connection is None
    # and the next message goes out on a fresh connection
    smtp.send(_message())
    assert len(smtp_server.recorder.wait_for(1)) == 1
    assert smtp_server.recorder.sessions == 2


def test_a_connection_lost_before_the_end_of_data_is_an_ordinary_error(app, smtp_server, sending):
    proxy = TcpProxy("127.0.0.1", smtp_server.port).start()
    app.extensions["mail"].port = proxy.port
    try:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.send(_message(), before_data=proxy.stop)
    finally:
        proxy.stop()
    assert smtp_server.messages == []


def test_an_end_of_data_never_answered_is_delivery_unconfirmed(app, smtp_server, sending):
    # Given a server that keeps the message and answers its end later than MAIL_DATA_TIMEOUT
    smtp_server.recorder.keep_when_late = True
    smtp_server.recorder.delay_s = 5
    app.config["MAIL_DATA_TIMEOUT"] = 1

    # When a message is sent, the attempt fails as unconfirmed, not as a timeout to retry
    with pytest.raises(smtp.DeliveryUnconfirmed, match="may have the message"):
        smtp.send(_message())
    assert issubclass(smtp.DeliveryUnconfirmed, smtp.PermanentError)  # so never retried
    assert smtp._kept.connection is None
    assert len(smtp_server.messages) == 1


def test_mail_data_timeout_not_mail_timeout_bounds_the_wait_for_the_end_of_data(
    app, smtp_server, sending
):
    smtp_server.recorder.delay_s = 2
    app.config["MAIL_TIMEOUT"] = 1
    app.config["MAIL_DATA_TIMEOUT"] = 10
    smtp.send(_message(1))
    # and the kept connection is back on MAIL_TIMEOUT for everything else
    assert smtp._kept.connection.host.sock.gettimeout() == 1
    smtp.send(_message(2))
    assert len(smtp_server.recorder.wait_for(2)) == 2
    assert smtp_server.recorder.sessions == 1


@pytest.mark.parametrize("to", ["jörg@example.com", "Jörg <jörg@example.com>"])
def test_a_recipient_whose_local_part_is_not_ascii_is_refused_for_good_without_connecting(
    app, smtp_server, sending, to
):
    # An address the API would refuse, reaching the sender another way (an older row)
    message = Message(subject="s", recipients=[to], body="b", sender="a@example.com")

    with pytest.raises(smtp.RecipientRefused, match="not ASCII") as raised:
        smtp.send(message)

    assert isinstance(raised.value, PermanentError)  # failed at once, never retried
    assert smtp_server.recorder.sessions == 0
    assert smtp_server.messages == []


def test_a_recipient_with_an_internationalised_domain_is_sent_in_idna_form(
    app, smtp_server, sending
):
    smtp.send(Message(subject="s", recipients=["r@bücher.example"], body="b", sender="a@x.org"))

    [received] = smtp_server.recorder.wait_for(1)
    assert received["To"] == "r@xn--bcher-kva.example"
