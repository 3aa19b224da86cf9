"""Step-up at the moment of decision: an environment's policy may require a decision within N minutes of an
MFA (re-)authentication. Outside the window the form asks for re-authentication and the API refuses with
``reauthentication_required`` (tokens never satisfy it); each refusal is recorded; each approval keeps how
and when its approver authenticated, on the request page and in the authorization log."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.urls import reverse

from compliance.errors import RuleViolation
from compliance.people.roles import Role
from deployments.api import tokens
from deployments.gate import policy, services
from deployments.models import Approval, Refusal
from tests import factories
from tests.compliance.identity.test_mfa import enrol_totp, sign_in

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# --- the rule ----------------------------------------------------------------------------------------


def test_the_rule_wants_a_second_factor_inside_the_window():
    rules = policy.PolicyRules(step_up_minutes=15)
    inside = policy.step_up_refusal(rules, method="mfa:totp", mfa_at=NOW - timedelta(minutes=14), now=NOW)
    outside = policy.step_up_refusal(rules, method="mfa:totp", mfa_at=NOW - timedelta(minutes=16), now=NOW)
    never = policy.step_up_refusal(rules, method="password", mfa_at=None, now=NOW)
    token = policy.step_up_refusal(rules, method="api_token", mfa_at=NOW, now=NOW)
    assert inside is None
    assert {outside.code, never.code, token.code} == {"reauthentication_required"}
    assert "API token" in token.message
    assert policy.step_up_refusal(policy.PolicyRules(), method="password", mfa_at=None, now=NOW) is None


def test_the_window_is_in_the_request_snapshot_only_when_on():
    assert "step_up_minutes" not in policy.PolicyRules().snapshot()
    assert policy.PolicyRules.from_snapshot(policy.PolicyRules(step_up_minutes=5).snapshot()).step_up_minutes == 5


# --- the web form and the API -------------------------------------------------------------------------


@pytest.fixture
def production(db):
    environment = factories.make_environment(name="production", step_up_minutes=15)
    requester = factories.engineer(environment, username="rita")
    approver = factories.approver(environment, username="ann")
    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(),
                                      ref="refs/heads/main")
    return request, approver


def _decide(client, request):
    form = {"decision": "approve", "comment": "Looks right.", "acknowledge_policy": "1",
            "checklist": request.policy_snapshot["impact_checklist"]}
    return client.post(reverse("deployments:decide", args=[request.pk]), form)


def _signed_in_with_totp(client, username) -> pyotp.TOTP:
    sign_in(client, username)
    totp = enrol_totp(client)
    client.post(reverse("logout"))
    sign_in(client, username)
    assert client.post(reverse("mfa_authenticate"), {"code": totp.now()}).status_code == 302
    return totp


def _age_session_authentications(client, minutes: int) -> None:
    """Make this browser session's sign-in records ``minutes`` older (as if the approver signed in earlier)."""
    session = client.session
    for record in session["account_authentication_methods"]:
        record["at"] -= minutes * 60
    session.save()


def test_a_decision_right_after_an_mfa_sign_in_is_accepted_with_its_evidence(client, production):
    request, _ = production
    _signed_in_with_totp(client, "ann")
    response = _decide(client, request)
    assert response.status_code == 302 and response["Location"].endswith(f"/requests/{request.pk}/")
    approval = Approval.objects.get(request=request)
    assert approval.authentication_method == "mfa:totp"
    assert approval.mfa_authenticated_at is not None
    assert abs(approval.mfa_authenticated_at - approval.created_at) < timedelta(minutes=1)
    page = client.get(reverse("deployments:request_detail", args=[request.pk])).content.decode()
    assert f'id="authentication-{approval.pk}"' in page and "Authenticated by mfa:totp" in page
    client.force_login(factories.UserFactory(roles=[Role.AUDITOR]))
    export = client.get(reverse("reports:export", args=["deployment-authorization-log", "csv"]))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert rows[0]["Approver authentication (method, when, last MFA)"].startswith("ann: mfa:totp at 20")
    assert ", MFA at 20" in rows[0]["Approver authentication (method, when, last MFA)"]


def test_outside_the_window_the_form_asks_for_reauthentication_then_accepts(client, production):
    request, _ = production
    _signed_in_with_totp(client, "ann")
    _age_session_authentications(client, 20)
    response = _decide(client, request)
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate"))
    assert not Approval.objects.filter(request=request).exists()
    refusal = Refusal.objects.get(request=request)
    assert refusal.code == "reauthentication_required" and refusal.actor.username == "ann"
    page = client.get(reverse("deployments:request_detail", args=[request.pk])).content.decode()
    assert 'id="step-up"' in page and "Re-authenticate with your second factor" in page
    # allauth refuses a TOTP code used once already (this period's signed in): a recovery code is a second factor too
    code = Authenticator.objects.get(user__username="ann", type=Authenticator.Type.RECOVERY_CODES).wrap()
    response = client.post(response["Location"], {"code": code.get_unused_codes()[0]})
    assert response.status_code == 302 and response["Location"].startswith(f"/requests/{request.pk}/")
    assert _decide(client, request).status_code == 302
    assert Approval.objects.get(request=request).mfa_authenticated_at is not None


def test_a_password_only_session_is_refused_and_sent_to_enrol(client, production):
    request, _ = production
    sign_in(client, "ann")
    response = _decide(client, request)
    assert response.status_code == 302 and response["Location"] == reverse("mfa_index")
    assert Refusal.objects.filter(request=request, code="reauthentication_required").exists()


def test_the_api_refuses_a_token_and_records_the_refusal(production):
    from django.test import Client

    request, approver = production
    _, clear = tokens.create_api_token(actor=approver, user=approver, name="ci")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {clear}").post(
        f"/api/v1/requests/{request.pk}/approve/",
        {"comment": "ok", "checklist": {item: True for item in request.policy_snapshot["impact_checklist"]}},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "reauthentication_required"
    assert Refusal.objects.filter(request=request, code="reauthentication_required", actor=approver).exists()
    assert not Approval.objects.filter(request=request).exists()


def test_the_service_refuses_a_decision_without_evidence_where_step_up_is_on(production):
    request, approver = production
    with pytest.raises(RuleViolation) as refused:
        factories.approve(request, approver)
    assert refused.value.code == "reauthentication_required"


def test_approvals_chained_before_the_evidence_existed_keep_their_digest(production):
    """The audit chain hashes every field of an approval: the evidence fields, added later, are left out
    while empty, so an approval without them digests exactly as before the migration that added them."""
    from compliance.audit.canonical import canonical_json, default_canonical, digest
    from compliance.audit.chain import chained_model

    request, approver = production
    request.policy_snapshot.pop("step_up_minutes")
    request.save(update_fields=["policy_snapshot"])
    approval = factories.approve(request, approver)
    approval.authentication_method = ""  # as migrated: no evidence recorded
    before = {k: v for k, v in default_canonical(approval).items()
              if k not in {"authentication_method", "authenticated_at", "mfa_authenticated_at"}}
    entry = chained_model("deployments.approval")
    assert entry.row_digest(approval) == digest(canonical_json(before))
    approval.authentication_method = "mfa:totp"
    assert entry.row_digest(approval) != digest(canonical_json(before))  # recorded evidence is chained
