"""``gate.eligibility``: one answer to "may this person decide this request now, and if not, why",
the first rule that stops them, in order."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.people.suspensions import suspend_user
from deployments.choices import Decision
from deployments.gate import eligibility, services
from deployments.models import FreezeWindow
from tests import factories

pytestmark = pytest.mark.django_db



def code(**kwargs):
    refusal = eligibility.decision_refusal(**kwargs)
    return refusal.code if refusal else None


# --- each rule, in order ------------------------------------------------------------------------


def test_a_change_author_is_refused(authored_by_carol, carol, dave):
    assert code(user=carol, request=authored_by_carol) == "change_author"
    assert code(user=dave, request=authored_by_carol) is None
    assert not eligibility.may_decide(user=carol, request=authored_by_carol)


def test_the_compliance_gates_refuse_untrained_and_suspended_approvers(guarded, authored_by_carol, dave):
    untrained = factories.approver(guarded, username="ursula", trained=False)
    assert code(user=untrained, request=authored_by_carol) == "training_required"
    suspend_user(actor=None, user=dave, reason="Investigation of an incident")
    assert code(user=dave, request=authored_by_carol) == "suspended"


def test_the_requester_named_by_ci_and_a_second_decision_are_refused(guarded, rita, dave):
    erin = factories.approver(guarded, username="erin", email="erin@example.com")
    request = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                      change_authors=["someone-else"], requester_login="Erin@Example.com")
    assert code(user=erin, request=request) == "self_approval"
    services.update_policy(actor=None, approval_policy=guarded.policy, required_approvals=2)
    later = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                    change_authors=["someone-else"])
    factories.approve(later, dave)
    assert code(user=dave, request=later) == "duplicate_decision"


def test_the_request_must_be_decidable_first(guarded, rita, carol, dave):
    services.update_policy(actor=None, approval_policy=guarded.policy, required_checks=["unit"])
    request = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                      change_authors=["carol"])
    assert code(user=dave, request=request) == "checks_not_passed"
    assert code(user=carol, request=request) == "checks_not_passed"  # the request's state comes first
    assert code(user=dave, request=request, checks_pending_ok=True) is None
    assert code(user=carol, request=request, checks_pending_ok=True) == "change_author"


def test_expiry_and_freezes(guarded, rita, dave):
    request = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                      change_authors=["someone-else"])
    assert code(user=dave, request=request, now=request.expires_at) == "request_expired"
    now = timezone.now()
    FreezeWindow.objects.create(environment=guarded, starts_at=now - timedelta(minutes=1),
                                ends_at=now + timedelta(hours=1), reason="Release weekend")
    assert code(user=dave, request=request) == "freeze_in_effect"
    standing = eligibility.standing_of(dave, with_freezes=True)
    assert code(user=dave, request=request, standing=standing, now=standing.at) == "freeze_in_effect"


# --- the order of the rules, and the services ----------------------------------------------------


def test_the_first_rule_that_stops_a_decision_is_the_one_the_services_refuse_with(authored_by_carol, carol, rita):
    outsider = factories.approver(username="outsider")
    assert code(user=outsider, request=authored_by_carol) == "not_permitted"
    assert code(user=rita, request=authored_by_carol) == "not_permitted"  # an engineer, never an approver
    for person, expected in ((outsider, "not_permitted"), (carol, "change_author")):
        with pytest.raises(Exception) as refused:
            factories.approve(authored_by_carol, person)
        assert refused.value.code == expected


def test_a_rejection_is_never_refused_for_an_identity_gap(rita, dave, guarded):
    services.update_policy(actor=None, approval_policy=guarded.policy, unverified_identity="refuse")
    unknown = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main")
    assert code(user=dave, request=unknown) == "identity_unverified"
    assert code(user=dave, request=unknown, decision=Decision.REJECT) is None
    assert eligibility.may_decide(user=dave, request=unknown)


