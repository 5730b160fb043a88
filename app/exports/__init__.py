"""Exports of a user's data: a writer per format (``writers``), the streaming
run with progress (``service``), and signed download links (``links``)."""
