"""Mirror the portal's freeze windows to GitLab freeze periods, so GitLab's ``$CI_DEPLOY_FREEZE`` agrees.

For a GitLab project with ``mirror_freeze_windows`` on, every freeze window of the service's protected
environments that has not ended becomes one GitLab freeze period (``/projects/:id/freeze_periods``).
A portal window is one-off, a GitLab period is a pair of cron expressions, so a window becomes crons
matching its first minute (``freeze_start``) and the minute after it ends (``freeze_end``) on those
dates, in UTC; once the window has ended its period is deleted (the crons would match again a year
later). Windows of a year or more cannot be written so and are skipped with a warning.

Runs every few minutes (``deployments.gitlab.mirror_freeze_periods``) and as soon as a freeze window
is saved or deleted. Only periods the portal made (``GitLabFreezePeriod``) are changed or deleted;
periods an administrator made on GitLab are left alone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from deployments.models import FreezeWindow

from .client import GitLabClient, GitLabError
from .intake import protected_environments
from .models import GitLabFreezePeriod, GitLabProject

logger = logging.getLogger(__name__)
TIMEZONE = "UTC"
LONGEST_WINDOW = timedelta(days=365)


def cron_for(moment: datetime) -> str:
    """A cron expression matching ``moment``'s minute on its date (any year), in UTC."""
    moment = moment.astimezone(UTC)
    return f"{moment.minute} {moment.hour} {moment.day} {moment.month} *"


def crons_for(window: FreezeWindow) -> tuple[str, str]:
    """(freeze_start, freeze_end): the start's minute and the first whole minute after the end."""
    end = window.ends_at.astimezone(UTC)
    if end.second or end.microsecond:
        end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return cron_for(window.starts_at), cron_for(end)


def windows_to_mirror(project: GitLabProject) -> list[FreezeWindow]:
    if not (project.mirror_freeze_windows and project.is_active):
        return []
    windows = FreezeWindow.objects.filter(
        environment__in=protected_environments(project), ends_at__gt=timezone.now()
    ).order_by("starts_at", "pk")
    mirrored = []
    for window in windows:
        if window.ends_at - window.starts_at >= LONGEST_WINDOW:
            logger.warning(
                "Freeze window #%s of %s lasts a year or more; GitLab freeze periods cannot express it.",
                window.pk,
                project.project_path,
            )
            continue
        mirrored.append(window)
    return mirrored


def _drop(client: GitLabClient, row: GitLabFreezePeriod) -> None:
    try:
        client.delete_freeze_period(row.project.project_path, row.period_id)
    except GitLabError as exc:
        if exc.status_code != 404:  # already gone on GitLab is what we want
            raise
    row.delete()


def sync_project(client: GitLabClient, project: GitLabProject) -> dict:
    """Make the project's mirrored freeze periods equal to its current windows. Returns counts.

    Each change on GitLab is recorded as soon as GitLab took it, and one refused call does not undo
    the others: the first failure is raised once the rest is done (the next run retries it), so a
    period made on GitLab is never left unrecorded (and never made twice)."""
    counts = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}
    failures: list[GitLabError] = []
    with transaction.atomic():
        project = GitLabProject.objects.select_for_update().select_related("service").get(pk=project.pk)
        wanted = {w.pk: w for w in windows_to_mirror(project)}
        rows = list(project.freeze_periods.select_related("project"))
        for row in rows:
            if row.window_id not in wanted:
                try:
                    _drop(client, row)
                except GitLabError as exc:
                    failures.append(exc)
                    continue
                counts["deleted"] += 1
        rows = {row.window_id: row for row in rows if row.window_id in wanted}
        on_gitlab = {p.get("id"): p for p in client.freeze_periods(project.project_path)} if wanted else {}
        for window in wanted.values():
            try:
                counts[_mirror(client, project, window, rows.get(window.pk), on_gitlab)] += 1
            except GitLabError as exc:
                failures.append(exc)
    if failures:
        raise failures[0]
    return counts


def _mirror(client, project, window, row, on_gitlab: dict) -> str:
    start, end = crons_for(window)
    fields = {"freeze_start": start, "freeze_end": end, "cron_timezone": TIMEZONE}
    period = on_gitlab.get(row.period_id) if row else None
    if row and period is not None:
        if all(period.get(k) == v for k, v in fields.items()):
            return "unchanged"
        client.update_freeze_period(project.project_path, row.period_id, **fields)
        outcome = "updated"
    else:
        created = client.create_freeze_period(project.project_path, **fields)
        row = row or GitLabFreezePeriod(project=project, window=window)
        row.period_id = created["id"]
        outcome = "created"
    row.freeze_start, row.freeze_end, row.cron_timezone = start, end, TIMEZONE
    row.save()
    return outcome


def sync_all(project_pk: int | None = None) -> dict:
    """Mirror every project that has mirroring on or still has mirrored periods (periodic task)."""
    from django.conf import settings
    from django.db.models import Q

    totals = {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 0}
    if not settings.GITLAB_TOKEN:
        return totals
    projects = GitLabProject.objects.filter(Q(mirror_freeze_windows=True) | Q(freeze_periods__isnull=False))
    if project_pk is not None:
        projects = projects.filter(pk=project_pk)
    with GitLabClient() as client:
        for project in projects.distinct().order_by("project_path"):
            try:
                for key, value in sync_project(client, project).items():
                    totals[key] += value
            except GitLabError as exc:
                totals["failed"] += 1
                logger.warning("Could not mirror freeze windows to %s: %s", project.project_path, exc)
    return totals
