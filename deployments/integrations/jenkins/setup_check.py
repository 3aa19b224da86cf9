"""Check the Jenkins set-up from the portal's side and say what is wrong (``manage.py check_jenkins``).

1. ``JENKINS_URL``, ``JENKINS_USER`` and ``JENKINS_API_TOKEN`` are set, and the outbound URL policy
   lets the portal reach that host.
2. Jenkins accepts the credentials as that user (``GET /whoAmI/api/json``: authenticated, the same
   name), and says whether it issues CSRF crumbs (``GET /crumbIssuer/api/json``).
3. Every service on Jenkins has each of its protected environments' jobs listed (``JenkinsJob``),
   and every listed job exists on Jenkins with the Pipeline REST API (``wfapi``) the portal reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from deployments.choices import CIProvider
from deployments.models import Environment
from portal import outbound

from .client import JenkinsClient, JenkinsError, configured_problem, job_url
from .models import JenkinsJob


@dataclass(frozen=True)
class Finding:
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.message}"


def check_jenkins() -> list[Finding]:
    findings: list[Finding] = []

    def ok(message):
        findings.append(Finding(True, message))

    def fail(message):
        findings.append(Finding(False, message))

    problem = configured_problem()
    if problem:
        fail(f'{problem} See docs/jenkins.md, "Connect Jenkins".')
        return findings
    ok(f"JENKINS_URL is {settings.JENKINS_URL}; the portal acts as Jenkins user {settings.JENKINS_USER!r}.")
    refused = outbound.scheme_problem(settings.JENKINS_URL)
    if refused:
        fail(
            f"The outbound URL policy refuses JENKINS_URL ({refused}): use https, or add the host to "
            f"PORTAL_OUTBOUND_ALLOWED_HOSTS."
        )
        return findings
    _check_identity(ok, fail)
    if any(not f.ok for f in findings):
        return findings
    _check_jobs(ok, fail)
    return findings


def _check_identity(ok, fail) -> None:
    try:
        with JenkinsClient() as client:
            me = client.who_am_i()
            crumb = client.crumb()
    except JenkinsError as exc:
        if exc.status_code == 401:
            fail(
                "Jenkins refused JENKINS_USER / JENKINS_API_TOKEN (HTTP 401): create an API token for the "
                'portal\'s user (its Security page, "API Token") and set JENKINS_API_TOKEN.'
            )
        else:
            fail(f"Cannot reach Jenkins at {settings.JENKINS_URL}: {exc}")
        return
    name = me.get("name") if isinstance(me, dict) else None
    if not (isinstance(me, dict) and me.get("authenticated") and name and name != "anonymous"):
        fail("Jenkins treats the portal as anonymous: check JENKINS_USER and JENKINS_API_TOKEN.")
        return
    if name != settings.JENKINS_USER:
        fail(
            f"Jenkins says the credentials belong to {name!r}, not JENKINS_USER {settings.JENKINS_USER!r}: the "
            f"Jenkinsfile's input submitter must be the portal's user."
        )
        return
    ok(f"Jenkins accepts the portal's credentials as {name!r}.")
    ok(
        "Jenkins issues CSRF crumbs; the portal sends them."
        if crumb
        else "Jenkins has no crumb issuer (CSRF protection off); the portal sends none."
    )


def _check_jobs(ok, fail) -> None:
    environments = (
        Environment.objects.filter(service__ci_provider=CIProvider.JENKINS, is_protected=True)
        .select_related("service")
        .order_by("service__name", "name")
    )
    listed = set(JenkinsJob.objects.values_list("environment_id", flat=True))
    for environment in environments:
        if environment.pk not in listed:
            fail(
                f"{environment}: no Jenkins job may deploy here yet; add one under Jenkins jobs in the admin "
                f"(job path, deploy stage)."
            )
    for job in JenkinsJob.objects.select_related("environment__service").order_by("pk"):
        if "*" in job.job_path:
            ok(f"{job}: a pattern; its builds are checked when they ask.")
            continue
        names = tuple(n for n in job.job_path.split("/") if n)
        try:
            with JenkinsClient() as client:
                client.get_json(job_url(names) + "api/json", params={"tree": "name,url"})
                client.get_json(job_url(names) + "wfapi/runs")
        except JenkinsError as exc:
            if exc.status_code == 404:
                fail(f"{job}: Jenkins has no such job, or the Pipeline: Stage View plugin (wfapi) is missing ({exc}).")
            else:
                fail(f"{job}: {exc}")
            continue
        ok(f"{job}: the job exists and answers the Pipeline REST API.")
