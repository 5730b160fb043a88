"""The toy the project's design started from, the baseline of `bench/e2e.py`: a Flask
endpoint that calls ``actor.send()``, a bare Dramatiq actor that sends with
``smtplib``, nothing in a database. Dramatiq's default middleware, its own
RabbitMQ vhost (``TOY_BROKER_URL``).

    gunicorn -w 2 -k sync bench.toy:app
    dramatiq bench.toy --processes 2 --threads 8

``TOY_SMTP_REUSE=1`` keeps one SMTP connection per worker thread instead of
one per email (bench/email_rate.py compares both).
"""

from __future__ import annotations

import os
import smtplib
import threading
from email.message import EmailMessage

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from flask import Flask, jsonify, request

broker = RabbitmqBroker(
    url=os.environ.get("TOY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
)
dramatiq.set_broker(broker)

SMTP_HOST = os.environ.get("MAIL_SERVER", "127.0.0.1")
SMTP_PORT = int(os.environ.get("MAIL_PORT", "8025"))
REUSE = os.environ.get("TOY_SMTP_REUSE") == "1"
_local = threading.local()


def _message(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "noreply@localhost"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


@dramatiq.actor(queue_name="toy_emails")
def send_email(to: str, subject: str, body: str) -> None:
    message = _message(to, subject, body)
    if not REUSE:
        with smtplib.SMTP(SMTP_HOST, SMTP_PORT, timeout=30) as connection:
            connection.send_message(message)
        return
    smtp = getattr(_local, "smtp", None)
    if smtp is None:
        smtp = _local.smtp = smtplib.SMTP(SMTP_HOST, SMTP_PORT, timeout=30)
    try:
        smtp.send_message(message)
    except smtplib.SMTPServerDisconnected:
        _local.smtp = None
        raise


app = Flask(__name__)


@app.post("/api/emails")
def create_email():
    data = request.get_json()
    message = send_email.send(data["to"], data["subject"], data["body"])
    return jsonify(message_id=message.message_id, status="queued"), 202
