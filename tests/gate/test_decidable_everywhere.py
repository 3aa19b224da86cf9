"""Every place that asks "may this person decide this request now" gets the same answer: the approval
queue lists only what the person may decide, the decision form offers only what is possible,
notifications reach only who may decide, detection flags only what would have been refused.
(No import of ``gate.eligibility`` here: these tests show the defects on the code before it.)"""

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.models import Violation, ViolationKind
from compliance.people.suspensions import suspend_user
from deployments.choices import RequestStatus
from deployments.gate import services
from deployments.models import FreezeWindow
from deployments.notifications.dispatch import eligible_approvers
from tests import factories

pytestmark = pytest.mark.django_db



def queue_ids(client, user, **data):
    client.force_login(user)
    response = client.get(reverse("deployments:queue"), data=data)
    assert response.status_code == 200
    return [row.pk for row in response.context["rows"]]


def home_ids(client, user):
    client.force_login(user)
    return [row.pk for row in client.get(reverse("home")).context["summary"]["awaiting_me"]]


# --- the approval queue (the defect: it listed requests the person cannot decide) ----------------


def test_a_change_author_does_not_find_the_request_in_their_queue(client, authored_by_carol, carol, dave):
    assert authored_by_carol.pk not in queue_ids(client, carol)
    assert authored_by_carol.pk not in queue_ids(client, carol, status="open")
    assert authored_by_carol.pk not in home_ids(client, carol)
    assert authored_by_carol.pk in queue_ids(client, dave)
    assert authored_by_carol.pk in home_ids(client, dave)


def test_an_untrained_approver_has_nothing_in_their_queue(client, guarded, authored_by_carol):
    untrained = factories.approver(guarded, username="ursula", trained=False)
    assert queue_ids(client, untrained) == []
    assert home_ids(client, untrained) == []


def test_a_suspended_approver_has_nothing_in_their_queue(client, authored_by_carol, dave):
    suspend_user(actor=None, user=dave, reason="Investigation of an incident")
    assert queue_ids(client, dave) == []
    assert home_ids(client, dave) == []


def test_the_requester_named_by_ci_and_who_already_decided_do_not_see_it(client, guarded, rita, dave):
    # An approver who is also the requester, named by CI under their e-mail address only.
    erin = factories.approver(guarded, username="erin", email="erin@example.com")
    request = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                      change_authors=["someone-else"], requester_login="Erin@Example.com")
    assert request.pk not in queue_ids(client, erin)
    services.update_policy(actor=None, approval_policy=guarded.policy, required_approvals=2)
    later = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                    change_authors=["someone-else"])
    factories.approve(later, dave)
    assert later.pk not in queue_ids(client, dave)


def test_a_request_waiting_for_checks_is_listed_for_who_will_decide_it(client, guarded, rita, carol, dave):
    services.update_policy(actor=None, approval_policy=guarded.policy, required_checks=["unit"])
    request = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                      change_authors=["carol"])
    assert request.status == RequestStatus.PENDING_CHECKS
    assert request.pk in queue_ids(client, dave, status=RequestStatus.PENDING_CHECKS)
    assert request.pk not in queue_ids(client, carol, status=RequestStatus.PENDING_CHECKS)


def test_frozen_and_expired_requests_leave_the_queue(client, guarded, rita, dave):
    request = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main",
                                      change_authors=["someone-else"])
    assert request.pk in queue_ids(client, dave)
    now = timezone.now()
    window = FreezeWindow.objects.create(environment=guarded, starts_at=now - timedelta(minutes=1),
                                         ends_at=now + timedelta(hours=1), reason="Release weekend")
    assert request.pk not in queue_ids(client, dave)
    window.delete()
    assert request.pk in queue_ids(client, dave)


# --- the decision form, notifications and detection agree ----------------------------------------


def test_the_decision_form_offers_only_what_is_possible(client, rita, dave, guarded):
    services.update_policy(actor=None, approval_policy=guarded.policy, unverified_identity="refuse")
    unknown = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main")
    client.force_login(dave)
    page = client.get(reverse("deployments:request_detail", args=[unknown.pk])).content.decode()
    assert 'value="reject"' in page and 'value="approve"' not in page
    assert "Separation of duties cannot be verified" in page


def test_only_people_who_may_decide_are_notified(authored_by_carol, guarded, carol, dave):
    factories.approver(guarded, username="ursula", trained=False)
    suspended = factories.approver(guarded, username="sam")
    suspend_user(actor=None, user=suspended, reason="Access review")
    assert [u.username for u in eligible_approvers(authored_by_carol)] == ["dave"]


def test_a_rejection_despite_an_identity_gap_is_not_an_ineligible_decision(rita, dave, guarded):
    services.update_policy(actor=None, approval_policy=guarded.policy, unverified_identity="refuse")
    unknown = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main")
    services.reject_request(actor=dave, request=unknown, comment="Who wrote this change?")
    assert not Violation.objects.filter(kind=ViolationKind.INELIGIBLE_DECISION).exists()


# --- shown apart, with the reason (never as "awaiting your decision") ---------------------------


def not_yours(client, user):
    client.force_login(user)
    response = client.get(reverse("deployments:queue"))
    assert response.status_code == 200
    return {row.pk: reason for row, reason in response.context["not_yours"]}, html.unescape(response.content.decode())


def test_a_change_author_sees_the_request_apart_with_the_reason(client, authored_by_carol, carol, dave):
    apart, page = not_yours(client, carol)
    assert "author" in apart[authored_by_carol.pk].lower()
    assert "Waiting on others" in page and apart[authored_by_carol.pk] in page
    assert authored_by_carol.pk not in not_yours(client, dave)[0]  # dave may decide: it is in his queue


def test_who_already_decided_sees_it_as_waiting_on_others(client, guarded, rita, dave):
    services.update_policy(actor=None, approval_policy=guarded.policy, required_approvals=2)
    request = services.submit_request(actor=rita, environment=guarded, sha=factories.sha(), ref="main")
    factories.approve(request, dave)
    assert not_yours(client, dave)[0] == {request.pk: "You have decided; waiting on others."}


def test_a_suspended_approver_sees_why_they_may_not_decide(client, authored_by_carol, dave):
    suspend_user(actor=None, user=dave, reason="Investigation of an incident")
    apart, _ = not_yours(client, dave)
    assert "suspended" in apart[authored_by_carol.pk].lower()


# --- "next in your queue" after a decision: the queue's own first row ------------------------------


def test_the_next_request_offered_is_the_queues_first_one_the_person_may_decide(client, guarded, rita, carol):
    from deployments.gate import selectors

    other = factories.make_environment(name="other", exclude_change_authors=True)
    factories.grant(rita, "request", other)
    factories.grant(carol, "approve", other)
    authored = services.submit_request(actor=rita, environment=guarded, sha=factories.sha("a"), ref="main",
                                       change_authors=["Carol"])  # the oldest, but carol may not decide it
    first = services.submit_request(actor=rita, environment=other, sha=factories.sha("b"), ref="main")
    newest = factories.make_environment(name="newest")
    factories.grant(rita, "request", newest)
    factories.grant(carol, "approve", newest)
    later = services.submit_request(actor=rita, environment=newest, sha=factories.sha("c"), ref="main")
    assert authored.pk not in queue_ids(client, carol)
    assert queue_ids(client, carol) == [first.pk, later.pk]
    assert selectors.next_request_awaiting(user=carol, exclude_pk=authored.pk) == first
    assert selectors.next_request_awaiting(user=carol, exclude_pk=first.pk) == later
    factories.approve(later, carol)
    assert selectors.next_request_awaiting(user=carol, exclude_pk=first.pk) is None
