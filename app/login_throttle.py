"""Slows down password guessing without locking the owner out, in the style of
OWASP's guidance (Authentication and Credential Stuffing cheat sheets, "device
cookies"). A try from an unknown client counts on three counters:

- the *client* (its address, an IPv6 client by its /64): after CLIENT's free
  failures, whatever the accounts tried, each further try waits twice as long
  as the one before. A client spraying random addresses is held here, and since
  every try is claimed before any password is hashed, this also bounds the hash
  work one client can cause: about 22 failed hashes in its first hour, then
  about four an hour;
- the *(account, client) pair*: after PAIR's free failures on one account from
  one client, the same doubling wait. A stranger's failures on an account hold
  the stranger, not the owner signing in from elsewhere;
- the *account*, across all clients: a cap that only slows (ACCOUNT's free
  failures, then at most a minute between tries) so that guessing one
  password from many addresses stays slow.

A *known device* (a browser holding the signed cookie set after its sign-in to
that account, or a valid session of that account) counts only on its own
(account, device) pair: neither its address's failures nor the account's cap
ever hold it, so the owner's own browser always gets PAIR's free tries.

Each counter forgets its failures WINDOW after the last one (cleanup prunes the
rows). A success clears its pair and takes back the failure its own claim
counted on the client and the account.

Counters live in the database so that every web process sees the same counts.
Every try is first *claimed*: all its counters are read, and unless one of them
says "wait", each is counted as a failure in one committed, conditional UPDATE
(compare-and-set on the row it read) before any password is hashed. Of any
number of simultaneous tries as a wait ends, exactly one wins the write; the
others see the new count and wait. No transaction stays open while the password
is hashed.

The client's address is REMOTE_ADDR, unless that is a proxy the deployment
already trusts for X-Forwarded-Proto (FORWARDED_ALLOW_IPS, as gunicorn reads
it: nginx on the same machine); then the X-Forwarded-For entry that proxy
appended, walking right to left past trusted proxies."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.db import changed_rows, db, utcnow
from app.models import LoginThrottle, SignInBackoff

# Failures older than this are forgotten (and their rows pruned by cleanup).
WINDOW = timedelta(hours=1)
# A lost compare-and-set is retried while tries are free; past them it means "wait".
CLAIM_TRIES = 20
PRUNE_BATCH = 1000
# How long a browser stays a known device after its last sign-in.
DEVICE_TTL = timedelta(days=180)
_DEVICE_SALT = "known-device"


@dataclass(frozen=True)
class Backoff:
    free: int
    first: timedelta
    most: timedelta

    def delay(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        return min(self.first * 2 ** (failures - self.free), self.most)


CLIENT = Backoff(free=10, first=timedelta(seconds=2), most=timedelta(minutes=15))
PAIR = Backoff(free=5, first=timedelta(seconds=2), most=timedelta(minutes=15))
ACCOUNT = Backoff(free=50, first=timedelta(seconds=2), most=timedelta(minutes=1))
FREE_FAILURES = PAIR.free


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Client:
    """Who is trying: ``address`` (see ``client_address``) and, for a known
    device, its id (from ``known_device``)."""

    address: str
    device: str | None = None


# Sign-ins from the command line (and tests outside a request).
LOCAL = Client(address="local")


# -- the client's address --------------------------------------------------


@cache
def _networks(allowed: str) -> tuple | None:
    """FORWARDED_ALLOW_IPS as networks; None for ``*`` (every peer)."""
    entries = [entry.strip() for entry in allowed.split(",") if entry.strip()]
    if "*" in entries:
        return None
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a host name: gunicorn does not match those either
    return tuple(networks)


def _ip(value: str):
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip, networks) -> bool:
    return ip is not None and (networks is None or any(ip in net for net in networks))


def client_address(environ: dict) -> str:
    """The client as the throttle counts it: an IPv4 address, or an IPv6 /64
    (what one subscriber usually holds)."""
    networks = _networks(current_app.config.get("FORWARDED_ALLOW_IPS") or "")
    ip = _ip(environ.get("REMOTE_ADDR") or "")
    hops = [hop for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    while hops and _trusted(ip, networks):
        ip = _ip(hops.pop())
    if ip is None:
        return "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# -- known devices ---------------------------------------------------------


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_DEVICE_SALT)


def device_cookie(email: str, device: str | None = None) -> str:
    """The signed value of a known-device cookie for ``email`` (a new device
    unless ``device`` is given)."""
    return _devices().dumps({"e": email, "d": device or secrets.token_urlsafe(16)})


def known_device(cookie: str | None, email: str) -> str | None:
    """The device id in a valid known-device cookie for ``email``, else None."""
    if not cookie:
        return None
    try:
        value = _devices().loads(cookie, max_age=int(DEVICE_TTL.total_seconds()))
    except BadSignature:
        return None
    if not isinstance(value, dict) or value.get("e") != email:
        return None
    device = value.get("d")
    return device if isinstance(device, str) and device else None


# -- counters --------------------------------------------------------------


@dataclass(frozen=True)
class _Counter:
    model: type[LoginThrottle] | type[SignInBackoff]
    key: str
    backoff: Backoff

    @property
    def column(self):
        return LoginThrottle.email if self.model is LoginThrottle else SignInBackoff.key


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _counters(email: str | None, client: Client) -> list[_Counter]:
    if email is None:  # no account can have this address: only the client counts
        return [_Counter(SignInBackoff, _digest("client", client.address), CLIENT)]
    if client.device:
        return [_Counter(SignInBackoff, _digest("device", email, client.device), PAIR)]
    return [
        _Counter(SignInBackoff, _digest("client", client.address), CLIENT),
        _Counter(SignInBackoff, _digest("pair", email, client.address), PAIR),
        _Counter(LoginThrottle, email, ACCOUNT),
    ]


def claim(email: str | None, client: Client = LOCAL) -> None:
    """Count one try for ``email`` from ``client`` as a failure on each of its
    counters, or raise TooManyFailures (counting nothing) while one says wait.
    ``email`` None: an address no account can have. Commits before returning."""
    pending = _counters(email, client)
    for _ in range(CLAIM_TRIES):
        now = utcnow()
        rows = [_read(counter) for counter in pending]
        wait = max(
            (row.last_failure_at + c.backoff.delay(row.failures) - now if row else timedelta(0))
            for c, row in zip(pending, rows, strict=True)
        )
        if wait > timedelta(0):
            db.session.rollback()
            raise TooManyFailures(max(1, int(wait.total_seconds() + 0.999)))
        pending = [
            counter
            for counter, row in zip(pending, rows, strict=True)
            if not _count(counter, row, now)
        ]
        if not pending:
            return
    raise TooManyFailures(1)


def _read(counter: _Counter):
    return db.session.execute(
        select(counter.model.failures, counter.model.last_failure_at).where(
            counter.column == counter.key
        )
    ).first()


def _count(counter: _Counter, row, now) -> bool:
    """One more failure on ``counter``, if its row is still as read."""
    model = counter.model
    if row is None:
        db.session.add(model(**{counter.column.key: counter.key}, failures=1, last_failure_at=now))
        try:
            db.session.commit()
            return True
        except IntegrityError:  # a simultaneous first try inserted it: claim against that row
            db.session.rollback()
            return False
    failures = 1 if now - row.last_failure_at > WINDOW else row.failures + 1
    claimed = changed_rows(
        update(model)
        .where(
            counter.column == counter.key,
            model.failures == row.failures,
            model.last_failure_at == row.last_failure_at,
        )
        .values(failures=failures, last_failure_at=now)
    )
    db.session.commit()
    return bool(claimed)


def record_success(email: str, client: Client = LOCAL) -> None:
    """The claimed try was no failure: clear its pair, take it back elsewhere."""
    for counter in _counters(email, client):
        model, where = counter.model, counter.column == counter.key
        if counter.backoff is PAIR:
            db.session.execute(delete(model).where(where))
        else:
            db.session.execute(
                update(model).where(where, model.failures > 0).values(failures=model.failures - 1)
            )
            db.session.execute(delete(model).where(where, model.failures <= 0))
    db.session.commit()


def prune() -> int:
    """Delete rows whose failures are forgotten anyway, in small batches."""
    cutoff, pruned = utcnow() - WINDOW, 0
    for model, column in ((LoginThrottle, LoginThrottle.email), (SignInBackoff, SignInBackoff.key)):
        while True:
            keys = db.session.scalars(
                select(column).where(model.last_failure_at < cutoff).limit(PRUNE_BATCH)
            ).all()
            if not keys:
                db.session.rollback()
                break
            db.session.execute(
                delete(model).where(column.in_(keys), model.last_failure_at < cutoff)
            )
            db.session.commit()
            pruned += len(keys)
    return pruned
