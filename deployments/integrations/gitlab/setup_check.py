"""Check the GitLab set-up from the portal's side and say what is missing (``manage.py check_gitlab``).

1. ``GITLAB_WEBHOOK_SECRET`` and ``GITLAB_TOKEN`` are set, the instance is reachable through the
   outbound policy, and the token works (``GET /user``: the portal's bot user).
2. For every GitLab service: a GitLab project is configured, exists and the token reaches it.
3. For every protected environment: GitLab protects an environment of that name and its approval
   rules require the bot's approval; the project has a webhook to the portal with the token,
   deployment, pipeline, job and push events.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from deployments.choices import CIProvider
from deployments.models import Service
from portal.links import absolute_url

from .client import GitLabClient, GitLabError
from .intake import protected_environments
from .models import GitLabProject
from .protection import environment_problems

NEEDED_HOOK_EVENTS = ("deployment_events", "pipeline_events", "job_events", "push_events")


@dataclass(frozen=True)
class Finding:
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.message}"


def check_gitlab() -> list[Finding]:
    findings: list[Finding] = []

    def ok(message):
        findings.append(Finding(True, message))

    def fail(message):
        findings.append(Finding(False, message))

    if settings.GITLAB_WEBHOOK_SECRET:
        ok("GITLAB_WEBHOOK_SECRET is set.")
    else:
        fail("GITLAB_WEBHOOK_SECRET is not set: every GitLab webhook will be refused.")
    if not settings.GITLAB_TOKEN:
        fail(
            "GITLAB_TOKEN (or GITLAB_TOKEN_FILE) is not set: create an access token with the api scope "
            "for the portal's GitLab bot user."
        )
        return findings
    with GitLabClient() as client:
        try:
            bot = client.current_user()
        except GitLabError as exc:
            fail(f"GitLab at {settings.GITLAB_URL} did not accept GITLAB_TOKEN: {exc}")
            return findings
        ok(f"GITLAB_TOKEN authenticates at {settings.GITLAB_URL} as {bot.get('username')!r}.")
        for service in Service.objects.filter(ci_provider=CIProvider.GITLAB).order_by("name"):
            project = GitLabProject.objects.filter(service=service).first()
            if project is None:
                fail(f"{service.name}: no GitLab project configured (admin → GitLab projects).")
                continue
            if not project.is_active:
                fail(f"{service.name}: its GitLab project {project.project_path} is switched off.")
                continue
            findings.extend(_check_project(client, project, bot))
    return findings


def _check_project(client: GitLabClient, project: GitLabProject, bot: dict) -> list[Finding]:
    where = project.project_path
    try:
        client.project(where)
    except GitLabError as exc:
        return [Finding(False, f"{where}: the bot cannot read the project ({exc}).")]
    out = [Finding(True, f"{where}: the bot can read the project.")]
    environments = protected_environments(project)
    if not environments:
        out.append(Finding(False, f"{where}: the service has no protected environment to poll."))
    for environment in environments:
        try:
            problems = environment_problems(client.protected_environment(where, environment.name), bot)
        except GitLabError as exc:
            problems = [f"cannot read it ({exc})"]
        if problems:
            out.append(Finding(False, f"{where} environment {environment.name!r}: {'; '.join(problems)}."))
        else:
            out.append(Finding(True, f"{where} environment {environment.name!r}: requires the bot's approval."))
    out.append(_check_hook(client, where))
    return out


def _check_hook(client: GitLabClient, where: str) -> Finding:
    target = absolute_url("gitlab_webhook")
    try:
        hooks = client.hooks(where)
    except GitLabError as exc:
        return Finding(False, f"{where}: cannot list webhooks ({exc}); the bot needs the Maintainer role for this.")
    ours = [h for h in hooks if str(h.get("url", "")).rstrip("/") == target.rstrip("/")]
    if not ours:
        return Finding(False, f"{where}: add a webhook to {target} with the secret token.")
    missing = [event for event in NEEDED_HOOK_EVENTS if not ours[0].get(event)]
    if missing:
        return Finding(False, f"{where}: the portal's webhook lacks {', '.join(missing)}.")
    return Finding(True, f"{where}: the webhook to the portal sends the needed events.")
