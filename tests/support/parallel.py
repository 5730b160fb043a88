"""How pytest-xdist shares the tests among its workers (``--dist loadscope``,
pyproject.toml): the tests of a module in one worker, so that module fixtures
and warm caches are built once; and the tests that must not run beside one
another (ONE_AT_A_TIME) all in one worker, one after another."""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

# The fault tests, whose leases and timeouts of a few seconds assume that no
# other such test loads the machine beside them, and their like among the
# integration tests (leases of 2 s; a cluster of three RabbitMQ nodes).
ONE_AT_A_TIME = (
    "tests/faults/",
    "tests/integration/test_rabbitmq_quorum.py",
    "tests/integration/test_rabbit_cluster.py",
)


class Scheduling(LoadScopeScheduling):
    """Pytest-xdist's ``loadscope``, whose scope is the module, but one scope
    for all of ONE_AT_A_TIME. (The biggest scopes are handed out first.)"""

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return "one-at-a-time" if module.startswith(ONE_AT_A_TIME) else module
