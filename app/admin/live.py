"""Live admin pages without the cost: a page answers with an ``ETag`` made from
a cheap version of what it shows, and its script asks again with
``If-None-Match``; while nothing changed the answer is a 304 with no body, and
the page is neither rendered nor sent again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Response, make_response, request


def version_of(*parts: object) -> str:
    """A short version for what a page shows, from the values it depends on."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def conditional(version: str, render: Callable[[str], str]) -> Response:
    """A 304 when the client holds ``version`` already; otherwise the page that
    ``render(version)`` draws (it puts the version where the script reads it)."""
    if request.if_none_match.contains(version):
        response = Response(status=304)
    else:
        response = make_response(render(version))
    response.set_etag(version)
    # Revalidate every time: a version is only ever good until the next change.
    response.headers["Cache-Control"] = "no-cache"
    return response
