"""The portal-gate CLI against a live test server: approved → 0, rejected → 1, timeout → 2.

The CLI polls while the approver acts, so two HTTP requests can be in flight at once. SQLite's
shared in-memory test database cannot take concurrent writers ("database table is locked"), so
the live server here serves one request at a time (like pytest-django's ``live_server``,
otherwise the same Django ``LiveServerThread``).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connections
from django.test.testcases import LiveServerThread, _StaticFilesHandler

import portal_gate
from deployments.api import tokens
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


class SerialWSGIServer(ThreadedWSGIServer):
    """Handles requests one after the other (each still on its own thread, as Django expects)."""

    lock = threading.Lock()

    def process_request_thread(self, request, client_address):
        with self.lock:
            super().process_request_thread(request, client_address)


class SerialLiveServerThread(LiveServerThread):
    server_class = SerialWSGIServer


@pytest.fixture
def live_server_url(transactional_db):
    shared = {}
    for conn in connections.all():
        if conn.vendor == "sqlite" and conn.is_in_memory_db():
            conn.inc_thread_sharing()
            shared[conn.alias] = conn
    thread = SerialLiveServerThread("127.0.0.1", _StaticFilesHandler, connections_override=shared, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()
    for conn in shared.values():
        conn.dec_thread_sharing()


@pytest.fixture
def setup(live_server_url):
    environment = factories.make_environment(name="staging")
    ci = factories.UserFactory(username="ci-bot", is_service_account=True)
    factories.grant(ci, "request", environment)
    approver = factories.approver(environment, username="vera-approver")
    _, ci_token = tokens.create_api_token(actor=ci, user=ci, name="ci", services=[environment.service])
    _, approver_token = tokens.create_api_token(actor=approver, user=approver, name="approver")
    return {"url": live_server_url, "service": environment.service.name, "ci": ci_token, "approver": approver_token}


def api(method, url, token, body=None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def run_gate(setup, sha, *extra):
    """Run the CLI in a thread (as a pipeline would run the command) and return a handle on its result."""
    result = {}

    def target():
        result["code"] = portal_gate.main([
            "request", "--url", setup["url"], "--token", setup["ci"], "--service", setup["service"],
            "--environment", "staging", "--sha", sha, "--ref", "main", "--poll-interval", "0.1",
            "--max-interval", "0.3", *extra,
        ])

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def wait_for_request(setup, sha, limit=100):
    for _ in range(limit):
        found = api("GET", f"{setup['url']}/api/v1/requests/?sha={sha}", setup["approver"])["results"]
        if found:
            return api("GET", f"{setup['url']}/api/v1/requests/{found[0]['id']}/", setup["approver"])
        time.sleep(0.1)
    raise AssertionError("the CLI never created the request")


def test_an_approved_request_exits_0(setup, capsys):
    sha = factories.sha()
    thread, result = run_gate(setup, sha, "--wait", "--timeout", "60")
    request = wait_for_request(setup, sha)
    checklist = {item: True for item in request["policy"]["impact_checklist"]}
    api("POST", f"{setup['url']}/api/v1/requests/{request['id']}/approve/", setup["approver"],
        {"checklist": checklist})
    thread.join(30)
    assert result["code"] == 0
    out = capsys.readouterr().out
    assert f"{setup['url']}/requests/{request['id']}/" in out
    assert "approved" in out.splitlines()[-1]


def test_a_rejected_request_exits_1_with_the_reason(setup, capsys):
    sha = factories.sha()
    thread, result = run_gate(setup, sha, "--wait", "--timeout", "60")
    request = wait_for_request(setup, sha)
    api("POST", f"{setup['url']}/api/v1/requests/{request['id']}/reject/", setup["approver"],
        {"comment": "Database migration not reviewed."})
    thread.join(30)
    assert result["code"] == 1
    assert "rejected" in capsys.readouterr().out.splitlines()[-1]


def test_no_decision_in_time_exits_2(setup, capsys):
    thread, result = run_gate(setup, factories.sha(), "--wait", "--timeout", "1")
    thread.join(30)
    assert result["code"] == 2
    assert "timed out" in capsys.readouterr().out.splitlines()[-1]


def test_a_refused_request_or_bad_token_exits_2(setup, capsys):
    assert portal_gate.main(["request", "--url", setup["url"], "--token", setup["ci"], "--service", "nope",
                             "--environment", "staging", "--sha", factories.sha(), "--ref", "main"]) == 2
    assert "unknown_environment" in capsys.readouterr().out
    assert portal_gate.main(["request", "--url", setup["url"], "--token", "dap_000000000000_bad", "--service",
                             setup["service"], "--environment", "staging", "--sha", factories.sha(),
                             "--ref", "main"]) == 2
    assert "invalid_token" in capsys.readouterr().out


def test_without_wait_it_exits_0_once_the_request_exists(setup, capsys):
    assert portal_gate.main(["request", "--url", setup["url"], "--token", setup["ci"], "--service", setup["service"],
                             "--environment", "staging", "--sha", factories.sha(), "--ref", "main"]) == 0
    assert "/requests/" in capsys.readouterr().out


def test_external_ids_are_kept_on_the_request(setup, capsys):
    from deployments.models import DeploymentRequest

    assert portal_gate.main(["request", "--url", setup["url"], "--token", setup["ci"], "--service", setup["service"],
                             "--environment", "staging", "--sha", factories.sha(), "--ref", "main",
                             "--external-id", "gitlab_pipeline_id=555", "--external-id", "job=7"]) == 0
    assert DeploymentRequest.objects.order_by("-pk").first().external_ids == {"gitlab_pipeline_id": "555", "job": "7"}
    assert portal_gate.main(["request", "--url", setup["url"], "--token", setup["ci"], "--service", setup["service"],
                             "--environment", "staging", "--sha", factories.sha(), "--ref", "main",
                             "--external-id", "no-value"]) == 2


def test_an_unreachable_portal_exits_2_at_the_deadline(capsys):
    code = portal_gate.main(["request", "--url", "http://127.0.0.1:9", "--token", "x", "--service", "s",
                             "--environment", "e", "--sha", "a" * 40, "--ref", "main", "--timeout", "0.5",
                             "--poll-interval", "0.1"])
    assert code == 2 and "cannot reach" in capsys.readouterr().out


def test_external_ids_name_the_ci_run(setup, capsys):
    sha = factories.sha()
    code = portal_gate.main([
        "request", "--url", setup["url"], "--token", setup["ci"], "--service", setup["service"],
        "--environment", "staging", "--sha", sha, "--ref", "main",
        "--external-id", "run=42", "--external-id", "job_url=https://ci.example.com/job/7/",
    ])
    assert code == 0
    request = wait_for_request(setup, sha)
    assert request["external_ids"] == {"run": "42", "job_url": "https://ci.example.com/job/7/"}


def test_a_malformed_external_id_is_refused_before_calling_the_portal(setup, capsys):
    code = portal_gate.main([
        "request", "--url", setup["url"], "--token", setup["ci"], "--service", setup["service"],
        "--environment", "staging", "--sha", factories.sha(), "--ref", "main", "--external-id", "no-equals-sign",
    ])
    assert code == 2 and "--external-id 'no-equals-sign': use name=value" in capsys.readouterr().out


def test_a_request_superseded_while_waiting_exits_1_saying_so_with_the_newer_link(setup, capsys):
    sha = factories.sha()
    thread, result = run_gate(setup, sha, "--wait", "--timeout", "60")
    request = wait_for_request(setup, sha)
    newer = api("POST", f"{setup['url']}/api/v1/requests/", setup["ci"],
                {"service": setup["service"], "environment": "staging", "sha": factories.sha(), "ref": "main"})
    thread.join(30)
    assert result["code"] == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert f"request #{request['id']} superseded by a newer request" in last
    assert f"(newer request: {setup['url']}/requests/{newer['id']}/)" in last


def test_the_change_record_goes_through_the_cli_and_a_missing_ticket_is_refused(setup, capsys):
    from deployments.gate import services
    from deployments.models import ApprovalPolicy, DeploymentRequest

    policy = ApprovalPolicy.objects.get(environment__service__name=setup["service"])
    services.update_policy(actor=None, approval_policy=policy, require_ticket=True, require_rollback_plan=True,
                           ticket_url_template="https://tickets.example.com/browse/{ticket}")
    sha = factories.sha()
    refused = portal_gate.main(["request", "--url", setup["url"], "--token", setup["ci"], "--service",
                                setup["service"], "--environment", "staging", "--sha", sha, "--ref", "main"])
    assert refused == portal_gate.EXIT_ERROR
    assert "ticket_required" in capsys.readouterr().out
    code = portal_gate.main([
        "request", "--url", setup["url"], "--token", setup["ci"], "--service", setup["service"],
        "--environment", "staging", "--sha", sha, "--ref", "main", "--ticket", "PAY-42", "--risk-level", "medium",
        "--impact", "Payments API only", "--rollback-plan", "Redeploy the previous release tag.",
    ])
    assert code == 0
    created = DeploymentRequest.objects.get(sha=sha)
    assert (created.ticket, created.risk_level, created.impact, created.rollback_plan) == (
        "PAY-42", "medium", "Payments API only", "Redeploy the previous release tag.")
    assert created.ticket_url == "https://tickets.example.com/browse/PAY-42"
