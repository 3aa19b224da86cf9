import pytest

from compliance.people.roles import Role
from deployments.choices import ExecutionStatus
from deployments.gate import services
from tests import factories


@pytest.fixture
def auditor(db):
    return factories.UserFactory(username="aude-auditor", roles=[Role.AUDITOR])


@pytest.fixture
def deployed(environment, requester, approvers):
    """Make a request that went all the way: approved by ``approvers[0]`` and deployed by CI."""

    def _deployed(*, emergency=False, status=ExecutionStatus.SUCCESS, **kwargs):
        if emergency:
            kwargs.update(is_emergency=True, justification="The checkout is down for every customer.")
        request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(),
                                          ref="main", **kwargs)
        factories.approve(request, approvers[0], comment="Looks right.")
        services.report_execution(actor=requester, environment=environment, sha=request.sha, status=status,
                                  request=request, external_id=f"run-{request.pk}")
        request.refresh_from_db()
        return request

    return _deployed
