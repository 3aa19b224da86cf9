"""Step-up at the moment of decision (``ApprovalPolicy.step_up_minutes``), the web side.

The rule itself is ``deployments.gate.policy.step_up_refusal``, enforced by the decision services; here:
the approver's authentication evidence for the services, the re-authentication the form asks for when
the window has passed (allauth's MFA re-authentication, then back to the request), and what the request
page says about it.
"""

from __future__ import annotations

from datetime import timedelta

from allauth.mfa.models import Authenticator
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from compliance.identity import evidence
from compliance.identity.mfa import STRONG_TYPES


def authentication_of(request) -> evidence.AuthenticationEvidence:
    return evidence.from_request(request)


def _has_second_factor(user) -> bool:
    return Authenticator.objects.filter(user=user, type__in=STRONG_TYPES).exists()


def reauthentication_url(request, req) -> str:
    back = reverse("deployments:request_detail", args=[req.pk]) + "#decide"
    if _has_second_factor(request.user):
        return f"{reverse('mfa_reauthenticate')}?{urlencode({'next': back})}"
    return reverse("mfa_index")


def ask_for_reauthentication(request, req, violation):
    """The decision was refused (and recorded) for want of a recent MFA: send the approver to re-authenticate
    with their second factor (or to enrol one), then back to the request to decide."""
    if _has_second_factor(request.user):
        messages.error(request, f"{violation.message} Nothing was recorded; decide again afterwards.")
    else:
        messages.error(request, f"{violation.message} You have no second factor yet: add one first.")
    return redirect(reauthentication_url(request, req))


def context(request, req) -> dict:
    """For the request page: whether this environment needs a recent MFA to decide, and whether the
    approver's is recent enough now."""
    minutes = int((req.policy_snapshot or {}).get("step_up_minutes", 0) or 0)
    if not minutes:
        return {"step_up": None}
    proof = authentication_of(request)
    fresh = proof.mfa_at is not None and timezone.now() - proof.mfa_at <= timedelta(minutes=minutes)
    return {"step_up": {"minutes": minutes, "fresh": fresh, "url": "" if fresh else reauthentication_url(request, req)}}
