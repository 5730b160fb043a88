"""What a job costs, beside how fast it went: per job, the SQL statements and
commits each process sent (``bench/sqlcount.py``), the commits PostgreSQL
counted for the bench's database, the WAL written, the CPU of every process
group (web, worker, PostgreSQL, RabbitMQ, the benchmark itself), and the
updates of the job tables and how many of them were HOT.

    meter = costs.Meter(log_dir, database=database)
    worker = common.dramatiq_worker(..., env={**env, **meter.env("worker")})
    meter.watch(worker=worker)
    meter.start(); ...the measured run...; meter.stop()
    print(costs.table({"project": meter.per_job(n)}))

How each figure is taken, and what it cannot see:

- statements, commits (client): counted in each process by SQLAlchemy's events
  (an executemany is one statement; the pool's pre-ping is counted; psycopg's
  implicit BEGIN is the ``begin`` event). The delta of the counts written every
  0.2 s, so a snapshot may miss the last 0.2 s.
- commits (server): ``pg_stat_database.xact_commit`` of the bench database. An
  idle PostgreSQL 15 backend reports its counters up to 10 s late
  (PGSTAT_IDLE_INTERVAL), so with a database ``start`` and ``stop`` wait
  ``SETTLE_S`` first. Read-only transactions that commit count too.
- WAL bytes: ``pg_current_wal_lsn()`` before and after; full-page images:
  ``pg_stat_wal.wal_fpi`` (late like the commits). The whole server, so other
  work on it counts too (the toy's column shows that floor).
- CPU ms: utime + stime + cutime + cstime from /proc/<pid>/stat, summed over a
  group's processes at each snapshot (a process's session for web and worker;
  for PostgreSQL the postmaster and its children, so backends that came and
  went are in the postmaster's cutime once reaped: exact, but the whole server,
  other databases included; "pg backends" is only the bench database's
  backends alive at the end; RabbitMQ is beam.smp, every vhost).
- HOT: ``n_tup_upd`` and ``n_tup_hot_upd`` of pg_stat_user_tables, same delay
  as the commits.
"""

from __future__ import annotations

import collections
import functools
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common, sqlcount

SETTLE_S = 10.5
TABLES = ("jobs", "emails", "job_attempts")
SITE = Path(__file__).resolve().parent / "sqlcount_site"
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU ---------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, list[str]] | None:
    """(parent pid, fields after the command name) of /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields


def cpu_ticks(pid: int, *, children: bool = True) -> int:
    """utime + stime, and with ``children`` the reaped children's, of ``pid``."""
    stat = _stat(pid)
    if stat is None:
        return 0
    fields = stat[1]
    return sum(int(value) for value in fields[11 : 15 if children else 13])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def postgres_pids() -> list[int]:
    """The postmaster (a ``postgres`` whose parent is not one) and its children."""
    comms = {pid: _comm(pid) for pid in _pids()}
    postgres = {pid for pid, comm in comms.items() if comm.startswith("postgres")}
    parents = {pid: (_stat(pid) or (0, []))[0] for pid in postgres}
    masters = {pid for pid, parent in parents.items() if parent not in postgres}
    return sorted(masters | {pid for pid, parent in parents.items() if parent in masters})


def rabbitmq_pids() -> list[int]:
    """The oldest beam.smp: the server's (each ``rabbitmqctl`` is a beam.smp too)."""
    beams = []
    for pid in _pids():
        stat = _stat(pid) if _comm(pid) == "beam.smp" else None
        if stat is not None:
            beams.append((int(stat[1][19]), pid))  # field 22, starttime
    return [min(beams)[1]] if beams else []


def session_pids(process: common.Process) -> list[int]:
    return [process.pid, *process.children()]


def _one(connection: Any, query: str, params: tuple = ()) -> Any:
    row = connection.execute(query, params).fetchone()
    assert row is not None, query
    return row[0]


# --- the meter ---------------------------------------------------------------------------


class Meter:
    """Snapshots of the costs of one side of a benchmark; ``database`` is the
    project's (None for a baseline without one)."""

    def __init__(self, log_dir: Path, *, database=None):
        import psycopg

        self._log_dir, self._database = log_dir, database
        self._groups: dict[str, Callable[[], list[int]]] = {
            "postgres": postgres_pids,
            "rabbitmq": rabbitmq_pids,
            "bench": lambda: [os.getpid()],
        }
        self._sql: dict[str, Path] = {}
        self._admin = psycopg.connect(ADMIN_URL, autocommit=True)
        self._own: Any = None
        if database is not None:
            self._own = database.connect()
            self._own.autocommit = True
        self._start: dict[str, Any] = {}
        self._end: dict[str, Any] = {}

    def _sql_dir(self, name: str) -> Path:
        directory = self._log_dir / f"sql-{name}-{uuid.uuid4().hex[:8]}"
        self._sql[name] = directory
        return directory

    def env(self, name: str) -> dict:
        """The environment a process of group ``name`` counts its SQL with."""
        path = [str(SITE), str(common.ROOT), os.environ.get("PYTHONPATH", "")]
        return {
            "PYTHONPATH": os.pathsep.join(p for p in path if p),
            sqlcount.DIR_ENV: str(self._sql_dir(name)),
        }

    def watch(self, **processes: common.Process) -> None:
        """CPU of each process's session, as group ``name``."""
        for name, process in processes.items():
            self._groups[name] = functools.partial(session_pids, process)

    def count_here(self, name: str) -> None:
        """This process's SQL, as group ``name`` (its CPU is group ``bench``)."""
        sqlcount.install(self._sql_dir(name))

    def start(self, *, settle: bool = True) -> None:
        self._start = self._snapshot(settle)

    def stop(self, *, settle: bool = True) -> None:
        self._end = self._snapshot(settle)

    def close(self) -> None:
        self._admin.close()
        if self._own is not None:
            self._own.close()

    def _snapshot(self, settle: bool) -> dict:
        if settle:  # quiet now: let the counts of the last moments land
            time.sleep(SETTLE_S if self._database is not None else 2 * sqlcount.FLUSH_S)
        self._admin.execute("SELECT pg_stat_clear_snapshot()")
        snap: dict = {
            "cpu": {name: sum(map(cpu_ticks, pids())) for name, pids in self._groups.items()},
            "sql": {name: sqlcount.read(path) for name, path in self._sql.items()},
            "lsn": _one(self._admin, "SELECT pg_current_wal_lsn()"),
            "fpi": _one(self._admin, "SELECT wal_fpi FROM pg_stat_wal"),
        }
        if self._database is not None:
            name = self._database.name
            snap["xact_commit"] = _one(
                self._admin, "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
            )
            backends = self._admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                (name, self._own.info.backend_pid),
            ).fetchall()
            snap["backends"] = {pid: cpu_ticks(pid, children=False) for (pid,) in backends}
            self._own.execute("SELECT pg_stat_clear_snapshot()")
            snap["tables"] = {
                relname: (upd, hot)
                for relname, upd, hot in self._own.execute(
                    "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                    " WHERE relname = ANY(%s)",
                    (list(TABLES),),
                )
            }
        return snap

    @property
    def counted(self) -> list[str]:
        """The groups whose SQL is counted."""
        return list(self._sql)

    def statements(self, name: str) -> collections.Counter:
        """Group ``name``'s counts between start and stop, by normalised text."""
        delta = self._end["sql"][name].copy()
        delta.subtract(self._start["sql"][name])
        return +delta

    def per_job(self, jobs: int) -> dict[str, float]:
        """Each figure over ``jobs``, in print order."""
        start, end = self._start, self._end
        row: dict[str, float] = {}
        for name in self._sql:
            counts = self.statements(name)
            control = {key: counts.pop(key, 0) for key in sqlcount.CONTROL}
            row[f"statements, {name}"] = sum(counts.values()) / jobs
            row[f"commits, {name}"] = control["COMMIT"] / jobs
            row[f"round trips, {name}"] = (sum(counts.values()) + sum(control.values())) / jobs
        if self._database is not None:
            row["commits, server"] = (end["xact_commit"] - start["xact_commit"]) / jobs
        row["WAL bytes, server"] = _lsn(end["lsn"]) - _lsn(start["lsn"])
        row["WAL bytes, server"] /= jobs
        row["WAL full-page images, server"] = (end["fpi"] - start["fpi"]) / jobs
        for name in end["cpu"]:
            ms = (end["cpu"][name] - start["cpu"][name]) * 1000 / _TICKS
            row[f"CPU ms, {name}"] = ms / jobs
        if self._database is not None:
            ticks = sum(t - start["backends"].get(pid, 0) for pid, t in end["backends"].items())
            row["CPU ms, pg backends"] = ticks * 1000 / _TICKS / jobs
            for table in TABLES:
                (upd0, hot0), (upd1, hot1) = (
                    snap["tables"].get(table, (0, 0)) for snap in (start, end)
                )
                row[f"updates, {table}"] = (upd1 - upd0) / jobs
                row[f"HOT updates, {table}"] = (hot1 - hot0) / jobs
        return row


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


# --- output ------------------------------------------------------------------------------

NOTES = (
    "(per {unit}: statements = SQL statements SQLAlchemy sent, pool pre-pings included;"
    " round trips add BEGIN, COMMIT, ROLLBACK; commits, server = xact_commit of the bench"
    " database; WAL and CPU of postgres and rabbitmq are the whole server's, other work"
    " included; CPU bench = this process: load generator, polling, publishing)"
)


def table(sides: dict[str, dict[str, float]], *, unit: str = "job") -> str:
    """The figures of each side (a column each), one row per figure; a side
    without a figure shows 0 for statements and commits (no database), else –."""
    names: list[str] = []
    for figures in sorted(sides.values(), key=len, reverse=True):
        names += [name for name in figures if name not in names]
    rows = []
    for name in names:
        row: dict[str, Any] = {f"per {unit}": name}
        for side, figures in sides.items():
            counted = name.split(",")[0] in ("statements", "commits", "round trips")
            default = 0.0 if counted else None
            row[side] = figures.get(name, default)
        rows.append(row)
    columns = [(f"per {unit}", ""), *((side, ",.2f") for side in sides)]
    return common.table(rows, columns) + "\n" + NOTES.format(unit=unit)


_TARGET = re.compile(r"\b(?:INSERT INTO|UPDATE|DELETE FROM|FROM)\s+\"?(\w+)", re.IGNORECASE)


def kind(text: str) -> str:
    """``SELECT jobs``, ``UPDATE emails``...: the first word and the first table."""
    if text == sqlcount.PING:
        return "SELECT 1 (pre-ping)"
    word = text.split(" ", 1)[0].upper()
    target = _TARGET.search(text)
    return f"{word} {target.group(1)}" if target else word


def breakdown(meter: Meter, jobs: int, *, top: int = 8, width: int = 110) -> str:
    """Per group, statements per job by kind, then the commonest texts."""
    lines = []
    for name in meter.counted:
        counts = meter.statements(name)
        if not counts:
            continue
        kinds: collections.Counter = collections.Counter()
        for text, n in counts.items():
            kinds[text if text in sqlcount.CONTROL else kind(text)] += n
        lines.append(
            f"{name}, per job by kind: "
            + ", ".join(f"{k} {n / jobs:.2f}" for k, n in kinds.most_common())
        )
        lines.append(f"{name}, top statements per job:")
        for text, n in counts.most_common(top):
            shown = text if len(text) <= width else text[: width - 1] + "…"
            lines.append(f"  {n / jobs:7.2f}  {shown}")
    return "\n".join(lines)
