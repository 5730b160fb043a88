"""The worker's entry: ``dramatiq actors`` imports this module (``actors``
imports it first), in each worker process it starts.

It creates the app from the environment, whose factory builds the broker from
``app.config`` (app/jobs/broker.py), and makes that broker the process's global
one, on which the actors are then declared. Creating the app opens no database
or broker connection: both are opened on first use, by the worker's threads.
The web, the ``flask`` command and the scheduler never import this module; they
take the broker from their own app.
"""

from __future__ import annotations

import dramatiq

from app import create_app
from app.jobs.broker import broker_of

app = create_app()
broker = broker_of(app)
dramatiq.set_broker(broker)
