"""The Jenkins provider: answer the build's ``input`` step through the outbox.

One attempt (within one total deadline, shorter than the outbox's lease):

1. Read ``<build>/wfapi/pendingInputActions``.
2. If the build waits on the request's input:
   - approved: first the build must have checked out the approved commit (``<build>/api/json``, the Git
     plugin's ``lastBuiltRevision``; a build that says nothing passes): a build of another commit is
     never proceeded (failed at once, administrators alerted);
   - approved, input without parameters: ``POST <build>/input/<id>/proceedEmpty``;
   - approved, input with parameters: ``POST <build>/input/<id>/submit`` with ``proceed`` and the form
     field ``json`` = ``{"parameter": [{"name", "value"}]}`` for the parameters the input declares among
     ``PORTAL_APPROVERS`` (who approved, comma-separated usernames) and ``PORTAL_REQUEST_URL`` (the
     request's page), so the build records who really approved;
   - rejected (or withdrawn: expired, cancelled, superseded, blocked): ``POST <build>/input/<id>/abort``.
   2xx (or the redirect ``submit`` answers with) is delivered.
3. If it does not (or Jenkins answers the POST 400/404: the input was settled meanwhile), read the
   build (``<build>/api/json``) and compare with the decision:
   - the input was proceeded (Jenkins records an ``ApproverAction``) and the portal approved, or the
     build ended without it being proceeded and the portal said no: **delivered** — Jenkins is
     already where the decision leads;
   - the opposite: **failed** at once, and administrators are alerted (reconciliation records what
     the build deployed, and detection opens the violation);
   - the build still runs and has not reached the input yet: retried with backoff.

Faults: 429 and 5xx are retried (``Retry-After`` honoured), as are network errors and a missed
deadline; 401 (bad token), 403 (the portal's user may not answer this input), and a build Jenkins
does not have fail at once with the reason.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings

from deployments.choices import Decision, DeliveryDecision
from deployments.delivery.providers.base import DecisionProvider, DeliveryOutcome
from deployments.models import Approval
from portal.links import absolute_url

from .client import JenkinsClient, JenkinsError, failure, on_jenkins
from .models import InputAnswer, JenkinsBuild
from .state import BuildState, record_state

logger = logging.getLogger(__name__)

APPROVERS_PARAMETER = "PORTAL_APPROVERS"
REQUEST_URL_PARAMETER = "PORTAL_REQUEST_URL"


def attempt_deadline() -> float:
    """Total seconds for one attempt (several calls): twice the per-call timeout, shorter than the
    outbox's lease (at least three times it), so a lease never ends while an attempt still runs."""
    return settings.PORTAL_HTTP_TIMEOUT * 2


class JenkinsProvider(DecisionProvider):
    name = "jenkins"

    def targets(self, request) -> bool:
        return JenkinsBuild.objects.filter(request_id=request.pk).exists()

    def build_payload(self, request, decision: str) -> dict:
        build = JenkinsBuild.objects.get(request_id=request.pk)
        approvers = sorted(
            Approval.objects.filter(request_id=request.pk, decision=Decision.APPROVE).values_list(
                "approver__username", flat=True
            )
        )
        return {
            "decision": decision,
            "sha": request.sha,
            "build_url": build.build_url,
            "input_id": build.input_id,
            "approvers": approvers if decision == DeliveryDecision.APPROVED else [],
            "request_url": absolute_url("deployments:request_detail", request.pk),
        }

    def deliver(self, delivery) -> DeliveryOutcome:
        build = JenkinsBuild.objects.filter(request_id=delivery.request_id).first()
        if build is None:
            return DeliveryOutcome(delivered=False, permanent=True, error="The request names no Jenkins build.")
        if not on_jenkins(build.build_url):
            return DeliveryOutcome(
                delivered=False,
                permanent=True,
                error="The build is not on the configured Jenkins (JENKINS_URL); nothing was sent.",
            )
        try:
            with JenkinsClient(deadline_seconds=attempt_deadline()) as client:
                return answer_input(client, build, delivery.decision, delivery.payload)
        except JenkinsError as exc:
            return DeliveryOutcome(
                delivered=False,
                status_code=exc.status_code,
                error=str(exc)[:500],
                retry_after=exc.retry_after,
                permanent=exc.permanent,
            )


def submit_form(pending: dict, payload: dict) -> dict | None:
    """The ``submit`` form for an input with parameters, or None for one without (``proceedEmpty``)."""
    declared = [p.get("name") for p in pending.get("inputs") or [] if isinstance(p, dict)]
    if not declared:
        return None
    values = {
        APPROVERS_PARAMETER: ", ".join(payload.get("approvers") or []),
        REQUEST_URL_PARAMETER: payload.get("request_url", ""),
    }
    parameters = [{"name": name, "value": values[name]} for name in declared if name in values]
    return {"proceed": pending.get("proceedText") or "Proceed", "json": json.dumps({"parameter": parameters})}


def answer_input(client: JenkinsClient, build: JenkinsBuild, decision: str, payload: dict) -> DeliveryOutcome:
    approve = decision == DeliveryDecision.APPROVED
    pending = next((p for p in client.pending_inputs(build.build_url) if p.get("id") == build.input_id), None)
    if pending is not None:
        if approve:
            approved_sha = payload.get("sha", "")
            built = BuildState.from_api(client.build(build.build_url)).built(approved_sha)
            if built != approved_sha:
                return DeliveryOutcome(
                    delivered=False,
                    permanent=True,
                    error=f"The build checked out {built[:12]}, not the approved commit {approved_sha[:12]}: "
                    f"its input was not proceeded.",
                )
        base = f"{build.build_url}input/{build.input_id}/"
        form = submit_form(pending, payload) if approve else None
        action = "abort" if not approve else ("submit" if form is not None else "proceedEmpty")
        response, body = client.post(base + action, form=form)
        code = response.status_code
        # submit answers with a redirect to the build's console; any other redirect (a proxy sending
        # http to https, a login page) means the input was not answered.
        answered = 200 <= code < 300 or (
            action == "submit"
            and code in (302, 303)
            and response.headers.get("Location", "").rstrip("/").endswith("console")
        )
        if 300 <= code < 400 and not answered:
            raise JenkinsError(
                f"Jenkins redirected POST input/…/{action} (HTTP {code}): set JENKINS_URL to the address "
                f"Jenkins answers at.",
                status_code=code,
                permanent=True,
            )
        if answered:
            record_state(build, answer=InputAnswer.PROCEEDED if approve else InputAnswer.ABORTED)
            return DeliveryOutcome(delivered=True, status_code=code)
        if code not in (400, 404):  # 400/404: settled meanwhile; Jenkins' state says how
            raise _post_failure(response, body, action)
    return compare_with_jenkins(client, build, approve)


def _post_failure(response, body: bytes, action: str) -> JenkinsError:
    error = failure(response, f"POST input/…/{action}")
    if response.status_code == 401:
        error.args = ("Jenkins refused the portal's credentials (HTTP 401): check JENKINS_USER and JENKINS_API_TOKEN.",)
    elif response.status_code == 403 and b"crumb" in body[:4000].lower():
        error.args = (
            "Jenkins refused the CSRF crumb twice (HTTP 403): check the crumb issuer and any proxy that drops "
            "the session cookie.",
        )
    elif response.status_code == 403:
        error.args = (
            f"Jenkins refused {action} (HTTP 403): the portal's Jenkins user "
            f"{settings.JENKINS_USER!r} must be the input's submitter.",
        )
    return error


def compare_with_jenkins(client: JenkinsClient, build: JenkinsBuild, approve: bool) -> DeliveryOutcome:
    state = BuildState.from_api(client.build(build.build_url))
    record_state(build, state)
    if state.proceeded_by:
        if approve:
            return DeliveryOutcome(delivered=True, error=f"The input was already proceeded by {state.proceeded_by}.")
        return DeliveryOutcome(
            delivered=False,
            permanent=True,
            error=f"The portal rejected this build, but Jenkins says {state.proceeded_by} proceeded its input.",
        )
    if state.building:
        raise JenkinsError(f"The build is not waiting on input {build.input_id} yet; trying again later.")
    if approve:
        return DeliveryOutcome(
            delivered=False,
            permanent=True,
            error=f"The portal approved this build, but it ended ({state.result or 'no result'}) without its input "
            f"being proceeded.",
        )
    return DeliveryOutcome(delivered=True, error=f"The build had already ended ({state.result or 'no result'}).")
