"""Check the GitHub set-up from the portal's side and say what is wrong (``manage.py check_github``).

1. The App settings are present and the App's JWT is accepted (``GET /app/installations``).
2. For every service on GitHub Actions: the App is installed on its repository with the
   permissions and events the portal needs.
3. For every environment of those services: GitHub has an environment of that name, the App is
   enabled as a custom deployment protection rule on it, and administrators cannot bypass it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings

from deployments.choices import CIProvider
from deployments.models import Service

from .client import GitHubClient, GitHubError, app_installations, installation_for_repository

NEEDED_PERMISSIONS = {"actions": "read", "deployments": "write", "checks": "read", "contents": "read"}
NEEDED_EVENTS = {"deployment_protection_rule", "deployment_status", "push", "branch_protection_rule"}
_LEVELS = {"read": 1, "write": 2, "admin": 3}


@dataclass(frozen=True)
class Finding:
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.message}"


def _enough(granted: str | None, needed: str) -> bool:
    return _LEVELS.get(granted or "", 0) >= _LEVELS[needed]


def check_github() -> list[Finding]:
    findings: list[Finding] = []

    def ok(message):
        findings.append(Finding(True, message))

    def fail(message):
        findings.append(Finding(False, message))

    if not settings.GITHUB_WEBHOOK_SECRET:
        fail("GITHUB_WEBHOOK_SECRET is not set: every webhook will be refused.")
    else:
        ok("GITHUB_WEBHOOK_SECRET is set.")
    if not settings.GITHUB_APP_ID or not settings.GITHUB_APP_PRIVATE_KEY:
        fail("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (or _FILE) must be set.")
        return findings
    try:
        installations = app_installations()
    except GitHubError as exc:
        fail(f"GitHub did not accept the App's JWT at {settings.GITHUB_API_URL}: {exc}")
        return findings
    ok(
        f"The App {settings.GITHUB_APP_ID} authenticates at {settings.GITHUB_API_URL} "
        f"({len(installations)} installation(s))."
    )
    by_id = {inst.get("id"): inst for inst in installations}

    services = Service.objects.filter(ci_provider=CIProvider.GITHUB).prefetch_related(
        "environments", "branch_protection_rules"
    )
    for service in services:
        repository = service.repository
        try:
            installation_id = installation_for_repository(repository)
        except GitHubError as exc:
            fail(f"{repository}: {exc}")
            continue
        installation = by_id.get(installation_id, {})
        permissions = installation.get("permissions") or {}
        needed = dict(NEEDED_PERMISSIONS)
        rules = list(service.branch_protection_rules.all())
        if rules:
            needed["administration"] = "write" if any(r.enforce for r in rules) else "read"
        missing = [f"{name}: {level}" for name, level in needed.items() if not _enough(permissions.get(name), level)]
        if missing:
            fail(f"{repository}: the installation lacks permissions {', '.join(missing)}.")
        else:
            ok(f"{repository}: installed (installation {installation_id}) with the needed permissions.")
        events = set(installation.get("events") or [])
        if NEEDED_EVENTS - events:
            fail(f"{repository}: subscribe the App to {', '.join(sorted(NEEDED_EVENTS - events))}.")
        client = GitHubClient(installation_id)
        for environment in service.environments.all():
            findings.extend(_check_environment(client, repository, environment.name))
    return findings


def _check_environment(client: GitHubClient, repository: str, name: str) -> list[Finding]:
    where = f"{repository} environment {name!r}"
    path = f"repos/{repository}/environments/{quote(name, safe='')}"
    try:
        environment = client.get_json(path)
        rules = client.get_json(f"{path}/deployment_protection_rules")
    except GitHubError as exc:
        if exc.status_code == 404:
            return [Finding(False, f"{where}: GitHub has no environment of this name.")]
        return [Finding(False, f"{where}: {exc}")]
    out = []
    ours = [
        rule
        for rule in rules.get("custom_deployment_protection_rules") or []
        if str((rule.get("app") or {}).get("id")) == str(settings.GITHUB_APP_ID)
    ]
    if not ours:
        out.append(Finding(False, f"{where}: enable the App as a custom deployment protection rule."))
    elif not all(rule.get("enabled") for rule in ours):
        out.append(Finding(False, f"{where}: the App's protection rule is disabled."))
    else:
        out.append(Finding(True, f"{where}: the App is its deployment protection rule."))
    if environment.get("can_admins_bypass", True):
        out.append(Finding(False, f'{where}: switch off "Allow administrators to bypass configured protection rules".'))
    return out
