"""Periodic jobs leave a heartbeat when they really run; a job that stops running shows on the
monitoring page and the administrators are e-mailed (once per late episode)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from compliance.audit.tasks import seal_audit_chain
from compliance.models import JobHeartbeat
from compliance.monitoring import jobs
from compliance.monitoring.tasks import check_job_heartbeats
from compliance.people.roles import Role
from portal.celery import app as celery_app
from tests import factories

pytestmark = pytest.mark.django_db


@celery_app.task(name="tests.broken_job")
def broken_job():
    raise LookupError("the job's own failure")


@pytest.fixture
def administrators():
    return [
        factories.UserFactory(username=name, roles=[Role.ADMINISTRATOR], is_staff=True, email=f"{name}@example.com")
        for name in ("ada", "otto")
    ]


def test_the_compliance_jobs_and_the_heartbeat_check_are_in_the_code_defined_schedule():
    scheduled = jobs.scheduled_jobs()
    for task in ("deployments.expire_due_requests", "compliance.enforce_training", "compliance.seal_audit_chain",
                 "compliance.verify_audit_chain", "deployments.reconcile_deployments",
                 "compliance.check_job_heartbeats"):
        assert task in scheduled, task
    assert scheduled["compliance.seal_audit_chain"] == timedelta(minutes=1)
    assert scheduled["compliance.verify_audit_chain"] == timedelta(days=1)


def test_a_real_run_of_a_scheduled_task_records_its_heartbeat():
    before = timezone.now()
    seal_audit_chain.delay()  # eager under pytest: the real task, through Celery's tracer and signals
    beat = JobHeartbeat.objects.get(task="compliance.seal_audit_chain")
    assert beat.last_outcome == "success" and beat.runs == 1 and beat.failures == 0
    assert before <= beat.last_started_at <= beat.last_finished_at == beat.last_success_at
    seal_audit_chain.delay()
    beat.refresh_from_db()
    assert beat.runs == 2


def test_a_failing_scheduled_task_records_the_failure_without_its_message(settings):
    settings.CELERY_BEAT_SCHEDULE = {**settings.CELERY_BEAT_SCHEDULE,
                                     "broken": {"task": "tests.broken_job", "schedule": 60.0}}
    with pytest.raises(LookupError):
        broken_job.delay()
    beat = JobHeartbeat.objects.get(task="tests.broken_job")
    assert beat.last_outcome == "failure" and beat.failures == 1 and beat.last_success_at is None
    assert beat.last_error == "LookupError"  # the class only: messages can hold secrets


def test_tasks_outside_the_schedule_leave_no_heartbeat():
    with pytest.raises(LookupError):
        broken_job.delay()  # not in the schedule
    assert not JobHeartbeat.objects.filter(task="tests.broken_job").exists()


def _beat(task, **fields):
    return JobHeartbeat.objects.create(task=task, **fields)


def test_a_job_is_late_after_twice_its_interval_without_success():
    now = timezone.now()
    _beat("compliance.seal_audit_chain", last_success_at=now - timedelta(seconds=119))
    _beat("compliance.verify_audit_chain", last_success_at=now - timedelta(hours=49), last_outcome="failure",
          last_started_at=now - timedelta(minutes=5))
    _beat("compliance.enforce_training", expected_since=now - timedelta(hours=3))  # never ran since beat started
    statuses = {s.task: s for s in jobs.job_statuses(now=now)}
    assert not statuses["compliance.seal_audit_chain"].late
    assert statuses["compliance.verify_audit_chain"].late
    assert statuses["compliance.enforce_training"].late and statuses["compliance.enforce_training"].never_ran
    assert not statuses["deployments.reconcile_deployments"].late  # no heartbeat, not expected yet: unknown
    later = {s.task: s for s in jobs.job_statuses(now=now + timedelta(seconds=2))}
    assert later["compliance.seal_audit_chain"].late


def test_late_jobs_are_e_mailed_to_administrators_once_per_episode(administrators, django_capture_on_commit_callbacks):
    now = timezone.now()
    _beat("compliance.verify_audit_chain", last_success_at=now - timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.alert_late_jobs(now=now) == 1
    [message] = mail.outbox
    assert sorted(message.to) == ["ada@example.com", "otto@example.com"]
    assert "compliance.verify_audit_chain" in message.body and "1 day(s)" in message.body
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.alert_late_jobs(now=now + timedelta(hours=1)) == 0  # already told
        assert jobs.alert_late_jobs(now=now + timedelta(days=1, minutes=1)) == 1  # still late a day later
    assert len(mail.outbox) == 2
    # it ran again, then stopped again: a new episode
    JobHeartbeat.objects.filter(task="compliance.verify_audit_chain").update(
        last_success_at=now + timedelta(days=1, hours=2)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.alert_late_jobs(now=now + timedelta(days=3, hours=3)) == 1
    assert len(mail.outbox) == 3


def test_the_heartbeat_check_is_itself_a_real_task(administrators, django_capture_on_commit_callbacks):
    _beat("deployments.reconcile_deployments", last_success_at=timezone.now() - timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert check_job_heartbeats.delay().get() == 1
    assert "deployments.reconcile_deployments" in mail.outbox[0].body
    assert JobHeartbeat.objects.get(task="compliance.check_job_heartbeats").last_outcome == "success"


@pytest.mark.django_db(transaction=True)
def test_beat_start_marks_every_job_as_expected():
    from compliance.monitoring.beat import PortalScheduler

    PortalScheduler(app=celery_app)
    expected = set(JobHeartbeat.objects.filter(expected_since__isnull=False).values_list("task", flat=True))
    assert set(jobs.scheduled_jobs()) <= expected


def test_the_monitoring_page_shows_late_jobs(client, administrators):
    now = timezone.now()
    _beat("compliance.enforce_training", last_success_at=now - timedelta(hours=5), last_outcome="success",
          last_started_at=now - timedelta(hours=5))
    client.force_login(administrators[0])
    page = client.get(reverse("monitoring:index")).content.decode()
    assert "Periodic jobs" in page and "1 job late" in page
    assert "compliance.enforce_training" in page and "Late by 4 hours" in page


def test_intervals_are_read_from_every_kind_of_schedule():
    from celery.schedules import crontab, schedule

    assert jobs._interval(30.0) == timedelta(seconds=30)
    assert jobs._interval(timedelta(hours=2)) == timedelta(hours=2)
    assert jobs._interval(schedule(run_every=timedelta(minutes=7))) == timedelta(minutes=7)
    assert jobs._interval(crontab(minute=0, hour=4)) == timedelta(days=1)  # daily at 04:00
    assert jobs._interval(crontab(minute=15)) == timedelta(hours=1)
    assert jobs._interval(crontab(minute=0, hour=3, day_of_week="mon")) == timedelta(days=7)
