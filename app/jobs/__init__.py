"""The job system: states (``state``), enqueue through the database (``outbox``),
and the Dramatiq middleware that ties a message to its job row (``middleware``)."""
