import pytest

from tests import factories
from tests.services_required import require_postgres, require_redis


@pytest.fixture(autouse=True)
def outbound_allows_the_local_test_receivers(settings):
    """Test receivers (pytest-httpserver, the fake GitHub) listen on loopback, which the outbound
    policy refuses by default: allow exactly loopback (pytest-httpserver names it "localhost"), as an
    operator would allow an internal CI host. The policy itself stays on (tests/portal/test_outbound.py)."""
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = ["localhost", "127.0.0.1", "::1"]


@pytest.fixture(autouse=True)
def audit_checkpoints_of_this_test(settings, tmp_path):
    """Each test's audit chain is new: its signed checkpoints go to its own directory (checkpoints of
    an earlier test's database would rightly read as a rewritten or truncated chain)."""
    settings.PORTAL_AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"


@pytest.fixture
def environment(db):
    """A staging environment with a one-approval policy and no required checks."""
    return factories.make_environment(name="staging")


@pytest.fixture
def requester(environment):
    return factories.engineer(environment, username="rita")


@pytest.fixture
def approvers(environment):
    return [factories.approver(environment, username=f"approver{i}") for i in range(3)]


@pytest.fixture
def submit(requester, environment):
    def _submit(*, actor=None, env=None, **kwargs):
        kwargs.setdefault("sha", factories.sha())
        kwargs.setdefault("ref", "refs/heads/main")
        from deployments.gate import services

        return services.submit_request(actor=actor or requester, environment=env or environment, **kwargs)

    return _submit


@pytest.fixture
def postgres():
    require_postgres()


@pytest.fixture
def celery_retries_eagerly():
    """Eager tasks normally propagate a retry as an exception; let Celery run the retries inline instead,
    as a worker would (without the countdown)."""
    from portal.celery import app

    previous = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = previous


@pytest.fixture
def celery_worker():
    """A worker thread consuming from the real broker (Redis), not eager execution."""
    require_redis()
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING",
                          shutdown_timeout=10):
            yield app
    finally:
        app.conf.task_always_eager = True
