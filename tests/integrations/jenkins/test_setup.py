"""The Jenkins integration's set-up: registration from its AppConfig, settings that stop start-up when
wrong, and ``manage.py check_jenkins`` explaining each missing piece."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from compliance.monitoring.jobs import scheduled_jobs
from deployments import integrations
from deployments.choices import CIProvider, Tier
from deployments.delivery import providers
from deployments.integrations.jenkins.models import JenkinsJob
from portal.schedule import beat_schedule
from tests import factories
from tests.integrations.jenkins.conftest import SHA
from tests.portal.test_settings import PRODUCTION, manage


def test_the_provider_reconciliation_source_and_periodic_job_are_registered(settings):
    assert providers.get("jenkins").name == "jenkins"
    assert "jenkins" in {source.name for source in integrations.reconciliation_sources()}
    task = "deployments.jenkins.reconcile_builds"
    assert task not in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}  # not core
    assert task in {entry["task"] for entry in beat_schedule().values()} and task in scheduled_jobs()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JENKINS_URL": "jenkins.example.com"}, "JENKINS_URL"),
        ({"JENKINS_USER": "portal:bot"}, "JENKINS_USER"),
        ({"JENKINS_API_TOKEN_FILE": "/nonexistent/token"}, "JENKINS_API_TOKEN_FILE"),
    ],
)
def test_a_bad_jenkins_value_stops_start_up_naming_the_variable(env, variable):
    result = manage("check", env={**PRODUCTION, **env})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and variable in last_line, last_line


def check() -> tuple[str, bool]:
    out = io.StringIO()
    try:
        call_command("check_jenkins", stdout=out)
    except CommandError as exc:
        return out.getvalue() + str(exc), False
    return out.getvalue(), True


@pytest.mark.django_db
def test_without_settings_it_names_what_to_set(settings):
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_API_TOKEN = "", "", ""
    text, ok = check()
    assert not ok and "JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN must be set" in text


@pytest.mark.django_db
def test_a_wrong_token_is_explained(jenkins, settings):
    settings.JENKINS_API_TOKEN = "revoked-0123456789"
    text, ok = check()
    assert not ok and "HTTP 401" in text and "API Token" in text and "revoked-0123456789" not in text


@pytest.mark.django_db
def test_an_unreachable_host_under_the_outbound_policy_is_explained(jenkins, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = []
    text, ok = check()
    assert not ok and "PORTAL_OUTBOUND_ALLOWED_HOSTS" in text


@pytest.mark.django_db
def test_environments_without_jobs_and_jobs_jenkins_lacks_are_named(jenkins):
    service = factories.ServiceFactory(name="billing-worker", ci_provider=CIProvider.JENKINS)
    production = factories.make_environment(service=service, name="production", tier=Tier.PRODUCTION)
    text, ok = check()
    assert not ok and "billing-worker/production: no Jenkins job may deploy here yet" in text
    JenkinsJob.objects.create(environment=production, job_path="billing/deploy")
    text, ok = check()
    assert not ok and "billing/deploy → billing-worker/production: Jenkins has no such job" in text
    jenkins.start_build(("billing", "deploy"), 1, SHA, waiting=False)
    JenkinsJob.objects.create(environment=production, job_path="billing-mb/*")
    text, ok = check()
    assert ok, text
    assert "accepts the portal's credentials as 'deployment-portal'" in text and "issues CSRF crumbs" in text
    assert "the job exists and answers the Pipeline REST API" in text and "Jenkins is set up correctly." in text
