"""Idempotent creates when the web worker dies mid-request, and concurrent retries, on PostgreSQL.

The web worker is a real process, killed (SIGKILL) while its create waits inside the request, as a
crash or a gunicorn timeout would end it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from django.db import connection, connections, transaction

from deployments.models import DeploymentRequest, IdempotencyKey
from tests import factories
from tests.api.test_api import api, post
from tests.services_required import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _waiting_backends(excluding: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> %s",
            [excluding],
        )
        return [row[0] for row in cursor.fetchall()]


# The web worker: a separate process making the create call through Django's request handling.
WORKER = """
import json, os, sys
import django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client(HTTP_AUTHORIZATION=os.environ["PORTAL_TEST_AUTHORIZATION"])
response = client.post("/api/v1/requests/", os.environ["PORTAL_TEST_BODY"], content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY="run-7")
print(response.status_code)
"""


def test_a_create_whose_worker_died_midway_can_be_retried_with_the_same_key(postgres, requester, environment):
    body = {"service": environment.service.name, "environment": environment.name, "sha": factories.sha(), "ref": "main"}
    client = api(requester)
    holding, release = threading.Event(), threading.Event()
    holder_pid: dict = {}

    def hold_the_requests_table():
        try:
            with transaction.atomic():
                with connections["default"].cursor() as cursor:
                    cursor.execute("LOCK TABLE deployments_deploymentrequest IN SHARE MODE")
                    cursor.execute("SELECT pg_backend_pid()")
                    holder_pid["pid"] = cursor.fetchone()[0]
                holding.set()
                release.wait(60)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_requests_table)
    holder.start()
    assert holding.wait(30)
    database = connection.settings_dict
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "PORTAL_TEST_AUTHORIZATION": client.defaults["HTTP_AUTHORIZATION"],
            "PORTAL_TEST_BODY": json.dumps(body),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: _waiting_backends(holder_pid["pid"]), timeout=60), "the create never waited"
    finally:
        worker.kill()  # kill -9 while the create waits inside the request
        worker.wait(30)
        release.set()
        holder.join(30)
    assert wait_for(lambda: not _waiting_backends(holder_pid["pid"]), timeout=20)
    assert DeploymentRequest.objects.count() == 0

    retry = post(client, "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="run-7")
    assert retry.status_code == 201, retry.content
    again = post(client, "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="run-7")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == retry.json()["id"]
    assert DeploymentRequest.objects.count() == 1
    assert IdempotencyKey.objects.filter(key="run-7").count() == 1


def test_concurrent_retries_with_one_key_create_one_request_and_replay_it(postgres, requester, environment):
    body = {"service": environment.service.name, "environment": environment.name, "sha": factories.sha(), "ref": "main"}
    barrier = threading.Barrier(6)
    answers: list = []
    lock = threading.Lock()

    def call():
        client = api(requester)
        try:
            barrier.wait(30)
            response = post(client, "/api/v1/requests/", body, HTTP_IDEMPOTENCY_KEY="same-run")
            with lock:
                answers.append((response.status_code, response.json().get("id")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 6
    assert {status for status, _ in answers} == {201}, answers
    assert len({pk for _, pk in answers}) == 1
    assert DeploymentRequest.objects.count() == 1
