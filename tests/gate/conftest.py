"""People and a request shared by the eligibility tests: an environment that excludes change authors,
its engineer, two approvers, and a request carol co-authored."""

import pytest

from deployments.gate import services
from tests import factories


@pytest.fixture
def guarded(db):
    """An environment whose policy excludes the change's authors from deciding."""
    return factories.make_environment(name="guarded", exclude_change_authors=True)


@pytest.fixture
def rita(guarded):
    return factories.engineer(guarded, username="rita")


@pytest.fixture
def carol(guarded):
    """An approver here who wrote part of the change."""
    return factories.approver(guarded, username="carol")


@pytest.fixture
def dave(guarded):
    return factories.approver(guarded, username="dave")


@pytest.fixture
def authored_by_carol(guarded, rita, carol, dave):
    return services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                   change_authors=["Carol"])
