"""The dashboard: who sees which page, the decision form and its refusals, filters, and query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from compliance.people.roles import Role
from compliance.people.suspensions import suspend_user
from deployments.choices import RequestStatus
from deployments.gate import services
from deployments.models import Approval, DeploymentRequest, Refusal
from tests import factories

pytestmark = pytest.mark.django_db

CHANGE_SET = {
    "base": factories.sha("base"),
    "head": factories.sha("head"),
    "commits": [{"sha": factories.sha("c1"), "author": "rita", "message": "Fix the rounding of totals",
                 "url": "https://ci.example/c1"}],
    "files_changed": 3, "additions": 42, "deletions": 7,
    "pull_requests": [{"number": 17, "title": "Rounding fix", "url": "https://scm.example/pr/17"}],
}


def decide_form(request, decision, *, comment="", checklist=True, acknowledge=True):
    data = {"decision": decision, "comment": comment}
    if checklist:
        data["checklist"] = list(request.policy_snapshot["impact_checklist"])
    if acknowledge:
        data["acknowledge_policy"] = str(request.policy_snapshot["version"])
    return data


@pytest.fixture
def awaiting(submit):
    return submit(title="Rounding fix", change_set=CHANGE_SET, source_url="https://ci.example/runs/1",
                  checks={"unit": "success"})


@pytest.fixture
def people(environment, requester, approvers):
    """The approver who may act, a neighbouring engineer who may not, and an outsider."""
    return {"approver": approvers[0], "engineer": requester, "outsider": factories.approver(username="outsider")}


# --- navigation ---------------------------------------------------------------------------------


def test_navigation_shows_each_role_only_what_it_can_do(client, people):
    client.force_login(people["approver"])
    page = client.get("/").content.decode()
    assert reverse("deployments:queue") in page and reverse("deployments:my_requests") not in page
    assert reverse("admin:index") not in page
    client.force_login(people["engineer"])
    page = client.get("/").content.decode()
    assert reverse("deployments:my_requests") in page and reverse("deployments:queue") not in page
    assert reverse("deployments:decisions") in page
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR], is_staff=True)
    client.force_login(admin)
    page = client.get("/").content.decode()
    assert reverse("admin:index") in page and reverse("deployments:queue") not in page


def test_training_and_reports_links_appear_only_when_those_pages_exist(client, people, settings):
    client.force_login(factories.UserFactory(roles=[Role.AUDITOR]))
    page = client.get("/").content.decode()
    assert f'href="{reverse("compliance:my_training")}"' in page
    assert f'href="{reverse("reports:index")}"' in page
    client.force_login(people["engineer"])  # reports are for auditors and administrators
    page = client.get("/").content.decode()
    assert f'href="{reverse("reports:index")}"' not in page


def test_pages_need_sign_in(client, awaiting):
    for url in (reverse("deployments:queue"), reverse("deployments:my_requests"), reverse("deployments:decisions"),
                reverse("deployments:request_detail", args=[awaiting.pk])):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
    response = client.post(reverse("deployments:decide", args=[awaiting.pk]), decide_form(awaiting, "approve"))
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert not Approval.objects.exists()


# --- the queue ----------------------------------------------------------------------------------


def test_the_queue_shows_the_approver_what_awaits_them_and_refuses_others(client, people, awaiting):
    client.force_login(people["approver"])
    response = client.get(reverse("deployments:queue"))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"#{awaiting.pk}" in page and "0 of 1 approvals" in page and awaiting.short_sha in page
    assert 'hx-trigger="every 30s"' in page
    client.force_login(people["engineer"])
    assert client.get(reverse("deployments:queue")).status_code == 403
    client.force_login(people["outsider"])  # an approver, but for other environments
    response = client.get(reverse("deployments:queue"))
    assert response.status_code == 200 and f"#{awaiting.pk}<" not in response.content.decode()


def test_the_queue_is_oldest_first_and_drops_what_i_decided(client, people, submit, environment, approvers):
    other = factories.make_environment(name="other")
    factories.grant(people["approver"], "approve", other)
    factories.grant(people["engineer"], "request", other)
    first = submit()
    second = submit(env=other)
    client.force_login(people["approver"])
    rows = list(client.get(reverse("deployments:queue")).context["rows"])
    assert [r.pk for r in rows] == [first.pk, second.pk]
    factories.approve(first, people["approver"])
    rows = list(client.get(reverse("deployments:queue")).context["rows"])
    assert [r.pk for r in rows] == [second.pk]


def test_the_queue_filters_searches_and_paginates(client, people, submit, environment):
    other = factories.make_environment(name="other")
    factories.grant(people["approver"], "approve", other)
    factories.grant(people["engineer"], "request", other)
    mine = submit(title="Payments rounding", ref="refs/heads/main")
    theirs = submit(env=other, title="Invoice layout")
    client.force_login(people["approver"])
    url = reverse("deployments:queue")
    pks = lambda response: [r.pk for r in response.context["rows"]]  # noqa: E731
    assert pks(client.get(url, {"environment": other.pk})) == [theirs.pk]
    assert pks(client.get(url, {"service": environment.service.name})) == [mine.pk]
    assert pks(client.get(url, {"q": "invoice"})) == [theirs.pk]
    assert pks(client.get(url, {"q": mine.sha[:10]})) == [mine.pk]
    assert pks(client.get(url, {"q": f"#{theirs.pk}"})) == [theirs.pk]
    assert pks(client.get(url, {"status": "pending_checks"})) == []
    # htmx refresh: only the results partial
    partial = client.get(url, {"q": "invoice"}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    body = partial.content.decode()
    assert body.lstrip().startswith('<section id="results"') and "<html" not in body
    assert "HX-Request" in partial["Vary"]


def test_the_queue_paginates(client, people, environment):
    client.force_login(people["approver"])
    envs = []
    for i in range(27):  # one open request per environment (a newer one supersedes the older)
        env = factories.make_environment(name=f"e{i}")
        factories.grant(people["approver"], "approve", env)
        factories.grant(people["engineer"], "request", env)
        envs.append(services.submit_request(actor=people["engineer"], environment=env, sha=factories.sha(),
                                            ref="main"))
    first = client.get(reverse("deployments:queue"))
    assert len(first.context["rows"]) == 25 and 'rel="next"' in first.content.decode()
    second = client.get(reverse("deployments:queue"), {"page": 2})
    assert [r.pk for r in second.context["rows"]] == [envs[25].pk, envs[26].pk]
    assert 'rel="next"' not in second.content.decode() and 'rel="prev"' in second.content.decode()


# --- my requests, recent decisions ---------------------------------------------------------------


def test_my_requests_lists_only_my_own_and_refuses_non_engineers(client, people, awaiting, environment):
    colleague = factories.engineer(environment, username="colleague")
    theirs = services.submit_request(actor=colleague, environment=environment, sha=factories.sha(), ref="main")
    client.force_login(people["engineer"])
    response = client.get(reverse("deployments:my_requests"))
    assert [r.pk for r in response.context["rows"]] == [awaiting.pk]  # superseded, still mine
    assert theirs.pk not in [r.pk for r in response.context["rows"]]
    assert client.get(reverse("deployments:my_requests"), {"status": "open"}).context["rows"] == []
    client.force_login(people["approver"])
    assert client.get(reverse("deployments:my_requests")).status_code == 403
    client.force_login(people["outsider"])
    assert client.get(reverse("deployments:my_requests")).status_code == 403


def test_recent_decisions_go_through_the_permission_layer(client, people, awaiting):
    factories.approve(awaiting, people["approver"], comment="Looks right")
    url = reverse("deployments:decisions")
    for who in ("approver", "engineer"):
        client.force_login(people[who])
        response = client.get(url)
        assert response.status_code == 200
        assert [a.request_id for a in response.context["rows"]] == [awaiting.pk]
        assert "Looks right" in response.content.decode()
    client.force_login(people["outsider"])
    response = client.get(url)
    assert response.status_code == 200 and list(response.context["rows"]) == []
    assert client.get(url, {"status": "reject"}).context["rows"] == []


# --- the request page ---------------------------------------------------------------------------


def test_the_request_page_has_everything_needed_to_decide(client, people, awaiting):
    client.force_login(people["approver"])
    page = client.get(reverse("deployments:request_detail", args=[awaiting.pk])).content.decode()
    for expected in ("https://ci.example/runs/1", awaiting.sha, "refs/heads/main", "Fix the rounding of totals",
                     "rita", "+42", "−7", "3 files changed", "#17", CHANGE_SET["base"][:12], "0 of 1 approvals",
                     "Needs 1 more approval", "Submitted", "Ready for approval", "Impact on production assessed",
                     "version 1 of this environment", "Approve", "Reject"):
        assert expected in page, expected


def test_the_request_page_shows_the_last_successful_deployment(client, people, submit, environment):
    earlier = submit()
    factories.approve(earlier, people["approver"])
    services.report_execution(actor=people["engineer"], environment=environment, sha=earlier.sha, status="success")
    later = submit()
    client.force_login(people["approver"])
    page = client.get(reverse("deployments:request_detail", args=[later.pk])).content.decode()
    assert f"last successful deployment here: <a href=\"/requests/{earlier.pk}/\">#{earlier.pk}</a>" in page


def test_decision_controls_are_shown_only_to_who_may_use_them(client, people, awaiting, environment):
    url = reverse("deployments:request_detail", args=[awaiting.pk])
    auditor = factories.UserFactory(roles=[Role.AUDITOR])
    for person in (people["engineer"], auditor):
        client.force_login(person)
        response = client.get(url)
        assert response.status_code == 200
        assert 'name="decision"' not in response.content.decode()
    client.force_login(people["outsider"])
    assert client.get(url).status_code == 404
    # a suspended approver sees why, not the controls
    suspend_user(actor=None, user=people["approver"], reason="Investigation of an incident")
    client.force_login(people["approver"])
    page = client.get(url).content.decode()
    assert 'name="decision"' not in page and "suspended" in page


def test_an_approver_approves_with_post_redirect_get(client, people, awaiting):
    client.force_login(people["approver"])
    response = client.post(reverse("deployments:decide", args=[awaiting.pk]),
                           decide_form(awaiting, "approve", comment="Reviewed"), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    assert response["Location"] == reverse("deployments:request_detail", args=[awaiting.pk])
    approval = Approval.objects.get()
    assert (approval.comment, approval.ip_address, approval.approver) == ("Reviewed", "10.1.2.3", people["approver"])
    awaiting.refresh_from_db()
    assert awaiting.status == RequestStatus.APPROVED
    page = client.get(response["Location"]).content.decode()
    assert f"You approved request #{awaiting.pk}" in page and 'name="decision"' not in page


@pytest.mark.parametrize(
    ("decision", "form", "status", "message"),
    [
        ("reject", {"comment": ""}, 400, "A rejection needs a comment"),
        ("approve", {"checklist": False}, 400, "Confirm every item of the impact checklist"),
        ("approve", {"acknowledge": False}, 400, "Confirm that you decide under version 1"),
        ("reject", {"comment": "no", "acknowledge": False}, 400, "Confirm that you decide under version 1"),
    ],
)
def test_an_incomplete_decision_is_refused_visibly_without_a_state_change(
    client, people, awaiting, decision, form, status, message
):
    client.force_login(people["approver"])
    events_before = awaiting.events.count()
    response = client.post(reverse("deployments:decide", args=[awaiting.pk]), decide_form(awaiting, decision, **form))
    assert response.status_code == status
    page = response.content.decode()
    assert 'role="alert"' in page and message in page
    assert not Approval.objects.exists()
    awaiting.refresh_from_db()
    assert awaiting.status == RequestStatus.AWAITING_APPROVAL
    # A typing mistake is not evidence: nothing on the permanent timeline, no refusal recorded.
    assert not Refusal.objects.filter(request=awaiting).exists()
    assert awaiting.events.count() == events_before


def test_the_decision_form_reports_every_mistake_at_once_and_keeps_what_was_typed(client, people, awaiting):
    client.force_login(people["approver"])
    form = decide_form(awaiting, "reject", comment="", acknowledge=False)
    response = client.post(reverse("deployments:decide", args=[awaiting.pk]), form)
    assert response.status_code == 400
    page = response.content.decode()
    assert "2 things to fix" in page
    assert "A rejection needs a comment" in page and "Confirm that you decide under version 1" in page
    assert 'id="error-comment"' in page and 'id="error-acknowledge_policy"' in page
    assert not Refusal.objects.exists()


def test_a_decision_with_no_choice_or_an_unknown_checklist_item_is_a_form_error(client, people, awaiting):
    client.force_login(people["approver"])
    url = reverse("deployments:decide", args=[awaiting.pk])
    form = decide_form(awaiting, "approve")
    form["decision"] = "maybe"
    response = client.post(url, form)
    assert response.status_code == 400 and "Choose Approve or Reject." in response.content.decode()
    form = decide_form(awaiting, "approve")
    form["checklist"] = [*form.get("checklist", []), "An item nobody wrote"]
    response = client.post(url, form)
    assert response.status_code == 400 and "The impact checklist changed" in response.content.decode()
    assert not Approval.objects.exists() and not Refusal.objects.exists()


def test_the_server_refuses_a_decision_the_form_would_not_offer(client, people, awaiting, environment):
    url = reverse("deployments:decide", args=[awaiting.pk])
    client.force_login(people["engineer"])  # the requester: separation of duties
    response = client.post(url, decide_form(awaiting, "approve"))
    assert response.status_code == 403
    assert "You do not hold the deployment approver role" in response.content.decode()
    requester_approver = factories.approver(environment, username="both")
    requester_approver.groups.add(*people["engineer"].groups.all())
    factories.grant(requester_approver, "request", environment)
    own = services.submit_request(actor=requester_approver, environment=environment, sha=factories.sha(), ref="main")
    client.force_login(requester_approver)
    response = client.post(reverse("deployments:decide", args=[own.pk]), decide_form(own, "approve"))
    assert response.status_code == 403 and "Separation of duties" in response.content.decode()
    client.force_login(people["outsider"])
    assert client.post(url, decide_form(awaiting, "approve")).status_code == 404
    assert not Approval.objects.exists()
    # CSRF stays enforced
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(people["approver"])
    assert strict.post(url, decide_form(awaiting, "approve")).status_code == 403
    assert not Approval.objects.exists()


def test_a_second_decision_by_the_same_person_is_refused(client, people, submit, environment, approvers):
    services.update_policy(actor=None, approval_policy=environment.policy, required_approvals=2)
    request = submit()
    client.force_login(people["approver"])
    url = reverse("deployments:decide", args=[request.pk])
    assert client.post(url, decide_form(request, "approve")).status_code == 302
    response = client.post(url, decide_form(request, "approve"))
    assert response.status_code == 409 and "already decided" in response.content.decode()
    assert Approval.objects.count() == 1


# --- query counts -------------------------------------------------------------------------------


def _queries(client, url, **kwargs) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **kwargs)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_the_queue_and_lists_run_a_constant_number_of_queries(client, people, environment, approvers):
    client.force_login(people["approver"])
    urls = [reverse("deployments:queue"), reverse("deployments:decisions")]

    def add_environment_with_request(i):
        env = factories.make_environment(name=f"q{i}", required_approvals=3)
        for person in approvers:
            factories.grant(person, "approve", env)
        factories.grant(people["engineer"], "request", env)
        request = services.submit_request(actor=people["engineer"], environment=env, sha=factories.sha(), ref="main")
        factories.approve(request, approvers[1])
        factories.approve(request, approvers[2])

    add_environment_with_request(0)
    few = {url: _queries(client, url) for url in urls}
    for i in range(1, 8):
        add_environment_with_request(i)
    assert len(client.get(urls[0]).context["rows"]) == 8
    many = {url: _queries(client, url) for url in urls}
    assert many == few
    client.force_login(people["engineer"])
    url = reverse("deployments:my_requests")
    assert _queries(client, url) == _queries(client, url, data={"status": "open"})


def test_the_request_page_runs_a_constant_number_of_queries(client, people, submit, environment, approvers):
    services.update_policy(actor=None, approval_policy=environment.policy, required_approvals=3)
    one = submit(checks={"unit": "success"})
    factories.approve(one, approvers[1])
    client.force_login(people["approver"])
    few = _queries(client, reverse("deployments:request_detail", args=[one.pk]))
    extra = [factories.approver(environment, username=f"extra{i}") for i in range(4)]
    services.update_policy(actor=None, approval_policy=environment.policy, required_approvals=9)
    many = submit(checks={"unit": "success", "lint": "success", "e2e": "pending"}, change_set=CHANGE_SET)
    for person in [approvers[1], approvers[2], *extra]:
        factories.approve(many, person)
    assert DeploymentRequest.objects.get(pk=many.pk).events.count() > 6
    assert _queries(client, reverse("deployments:request_detail", args=[many.pk])) == few


def test_untrusted_ci_data_cannot_inject_links_or_break_the_page(client, people, submit):
    request = submit(
        source_url="javascript:alert(1)",
        change_set={"commits": [{"sha": "x", "url": "javascript:alert(2)", "message": "<script>alert(3)</script>"},
                                "not a dict"],
                    "pull_requests": "not a list", "files_changed": "many", "additions": 5,
                    "compare_url": "data:text/html,boom"},
    )
    client.force_login(people["approver"])
    response = client.get(reverse("deployments:request_detail", args=[request.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "javascript:" not in page and "data:text/html" not in page and "<script>alert(3)" not in page
    assert "&lt;script&gt;alert(3)" in page and "+5" in page


def test_chat_webhook_urls_of_each_kind_are_understood():
    from deployments.notifications.dispatch import apprise_url, validate_webhook_url

    assert validate_webhook_url("slack", "https://hooks.slack.com/services/T000/B000/abcdefghijkl") is None
    teams = ("https://prod-00.westus.logic.azure.com:443/workflows/0123456789abcdef/triggers/manual/paths/invoke"
             "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abcdefghijklmnop")
    assert validate_webhook_url("teams", teams) is None
    assert apprise_url("json", "https://hooks.example.com/deploys") == "jsons://hooks.example.com/deploys"
    assert validate_webhook_url("json", "https://hooks.example.com/deploys") is None
