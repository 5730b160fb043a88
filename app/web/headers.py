"""Headers every response carries, pages and API alike: none of it may be
framed (clickjacking), sniffed into another type, leak its address to other
sites, or be kept by a browser or proxy cache (the pages and answers are a
user's own data, the login page holds a CSRF token). Registered once, in
``create_app``."""

from __future__ import annotations

FRAME_ANCESTORS = "frame-ancestors 'none'"


def secure_headers(response):
    headers = response.headers
    headers["X-Frame-Options"] = "DENY"
    policy = headers.get("Content-Security-Policy", "").strip().rstrip(";")
    if "frame-ancestors" not in policy:  # extend a view's own policy, never drop it
        headers["Content-Security-Policy"] = (
            f"{policy}; {FRAME_ANCESTORS}" if policy else FRAME_ANCESTORS
        )
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Referrer-Policy", "same-origin")
    if not response.cache_control.public:  # only a view that says its answer is public is cached
        headers["Cache-Control"] = "no-store"
    return response
