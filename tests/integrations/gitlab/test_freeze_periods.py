"""Freeze windows of a GitLab service's protected environments are mirrored to GitLab freeze periods
(so ``$CI_DEPLOY_FREEZE`` agrees with the portal) when the project opts in: created when a window is
saved, updated when it changes, deleted when it is deleted or has ended; GitLab's own periods stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from deployments.choices import Tier
from deployments.integrations.gitlab import freeze
from deployments.integrations.gitlab.models import GitLabFreezePeriod
from deployments.models import FreezeWindow
from tests import factories
from tests.integrations.gitlab.conftest import PROJECT
from tests.integrations.gitlab.fake import TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def mirrored(project):
    project.mirror_freeze_windows = True
    project.save()
    return project


def freeze_window(environment, starts_at, ends_at, capture):
    with capture(execute=True):
        return FreezeWindow.objects.create(
            environment=environment, starts_at=starts_at, ends_at=ends_at, reason="Year-end close"
        )


def periods(gitlab):
    return gitlab.freeze_periods.get(PROJECT, [])


def test_a_saved_window_becomes_a_freeze_period_with_crons_for_its_dates(
    gitlab, production, mirrored, django_capture_on_commit_callbacks
):
    start = datetime(2099, 12, 24, 17, 30, tzinfo=UTC)
    window = freeze_window(production, start, start + timedelta(days=3, seconds=20), django_capture_on_commit_callbacks)
    [period] = periods(gitlab)
    assert (period["freeze_start"], period["freeze_end"], period["cron_timezone"]) == (
        "30 17 24 12 *",
        "31 17 27 12 *",  # the end rounded up to a whole minute: the freeze covers the whole window
        "UTC",
    )
    row = GitLabFreezePeriod.objects.get()
    assert (row.window, row.period_id) == (window, period["id"])
    assert all(c.headers.get("Private-Token") for c in gitlab.calls_to("/freeze_periods"))


def test_changing_a_window_updates_its_period_and_deleting_it_deletes_it(
    gitlab, production, mirrored, django_capture_on_commit_callbacks
):
    start = datetime(2099, 6, 1, 8, 0, tzinfo=UTC)
    window = freeze_window(production, start, start + timedelta(hours=4), django_capture_on_commit_callbacks)
    [period] = periods(gitlab)
    window.ends_at = start + timedelta(hours=6)
    with django_capture_on_commit_callbacks(execute=True):
        window.save()
    assert [(p["id"], p["freeze_end"]) for p in periods(gitlab)] == [(period["id"], "0 14 1 6 *")]
    assert gitlab.calls_to(rf"/freeze_periods/{period['id']}$", "PUT")
    with django_capture_on_commit_callbacks(execute=True):
        window.delete()
    assert periods(gitlab) == [] and not GitLabFreezePeriod.objects.exists()


def test_an_ended_window_is_removed_and_gitlabs_own_periods_stay(
    gitlab, production, mirrored, django_capture_on_commit_callbacks
):
    gitlab.freeze_periods[PROJECT] = [
        {"id": 1, "freeze_start": "0 23 * * 5", "freeze_end": "0 7 * * 1", "cron_timezone": "UTC"}
    ]
    now = timezone.now()
    window = freeze_window(
        production, now - timedelta(hours=1), now + timedelta(hours=1), django_capture_on_commit_callbacks
    )
    assert len(periods(gitlab)) == 2
    FreezeWindow.objects.filter(pk=window.pk).update(ends_at=now - timedelta(minutes=1))  # time passed
    assert freeze.sync_all()["deleted"] == 1
    assert [p["id"] for p in periods(gitlab)] == [1]
    assert freeze.sync_all() == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 0}


def test_a_period_deleted_on_gitlab_is_made_again_and_an_unchanged_one_is_left(
    gitlab, production, mirrored, django_capture_on_commit_callbacks
):
    start = datetime(2099, 3, 1, 0, 0, tzinfo=UTC)
    freeze_window(production, start, start + timedelta(days=1), django_capture_on_commit_callbacks)
    assert freeze.sync_all()["unchanged"] == 1
    gitlab.freeze_periods[PROJECT] = []
    assert freeze.sync_all()["created"] == 1
    [period] = periods(gitlab)
    assert GitLabFreezePeriod.objects.get().period_id == period["id"]


def test_nothing_is_mirrored_without_the_opt_in_and_turning_it_off_removes_the_periods(
    gitlab, production, project, django_capture_on_commit_callbacks
):
    start = datetime(2099, 3, 1, 0, 0, tzinfo=UTC)
    freeze_window(production, start, start + timedelta(days=1), django_capture_on_commit_callbacks)
    assert freeze.sync_all()["created"] == 0 and periods(gitlab) == []
    assert not gitlab.calls_to("/freeze_periods")
    project.mirror_freeze_windows = True
    project.save()
    assert freeze.sync_all()["created"] == 1
    project.mirror_freeze_windows = False
    project.save()
    assert freeze.sync_all()["deleted"] == 1
    assert periods(gitlab) == [] and not GitLabFreezePeriod.objects.exists()


def test_windows_of_unprotected_environments_and_of_a_year_or_more_are_not_mirrored(
    gitlab, production, mirrored, django_capture_on_commit_callbacks
):
    sandbox = factories.make_environment(service=production.service, name="sandbox", tier=Tier.DEVELOPMENT)
    start = datetime(2099, 3, 1, 0, 0, tzinfo=UTC)
    freeze_window(sandbox, start, start + timedelta(days=1), django_capture_on_commit_callbacks)
    freeze_window(production, start, start + timedelta(days=400), django_capture_on_commit_callbacks)
    assert periods(gitlab) == [] and not GitLabFreezePeriod.objects.exists()


def test_a_refused_token_or_a_gitlab_fault_changes_nothing_and_the_next_run_catches_up(
    gitlab, production, mirrored, settings, django_capture_on_commit_callbacks
):
    settings.GITLAB_TOKEN = "glpat-revoked"
    start = datetime(2099, 3, 1, 0, 0, tzinfo=UTC)
    freeze_window(production, start, start + timedelta(days=1), django_capture_on_commit_callbacks)
    assert periods(gitlab) == [] and not GitLabFreezePeriod.objects.exists()
    assert gitlab.calls_to("/freeze_periods")[-1].status == 401
    settings.GITLAB_TOKEN = TOKEN
    gitlab.fail("freeze", (500, {}))
    assert freeze.sync_all()["failed"] == 1 and not GitLabFreezePeriod.objects.exists()
    assert freeze.sync_all()["created"] == 1 and len(periods(gitlab)) == 1


def test_a_failure_midway_keeps_what_gitlab_took_so_no_period_is_made_twice(
    gitlab, production, project, django_capture_on_commit_callbacks
):
    start = datetime(2099, 3, 1, 0, 0, tzinfo=UTC)
    for days in (0, 10):
        window_start = start + timedelta(days=days)
        freeze_window(production, window_start, window_start + timedelta(hours=2), django_capture_on_commit_callbacks)
    project.mirror_freeze_windows = True
    project.save()
    gitlab.fail("freeze", (0, {}), (0, {}), (500, {}))  # the list and the first period pass, the second fails
    assert freeze.sync_all()["failed"] == 1
    assert len(periods(gitlab)) == 1 and GitLabFreezePeriod.objects.count() == 1
    assert freeze.sync_all()["created"] == 1
    assert len(periods(gitlab)) == 2 and GitLabFreezePeriod.objects.count() == 2
