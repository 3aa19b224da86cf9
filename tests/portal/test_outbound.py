"""The outbound URL policy (portal/outbound.py): https, public destinations only, at save and at connect.

Refusals of non-loopback addresses are tested on literal strings only (validators; nothing connects
to them). The connect-time check is tested with ``localhost`` against a real local receiver while
loopback is NOT allow-listed: refused before any byte is sent.
"""

from __future__ import annotations

import json
import time

import apprise
import pytest
import requests
from django.urls import reverse
from werkzeug import Response

from deployments.choices import DeliveryStatus
from deployments.delivery import outbox as delivery
from deployments.delivery.secrets import encrypt_secret
from deployments.models import DecisionDelivery, DeliveryAttempt, WebhookEndpoint
from deployments.notifications import dispatch as notifications
from deployments.notifications.admin import ChatChannelForm
from deployments.notifications.models import ChatChannel, ChatKind, NotificationLog
from portal import outbound
from tests import factories
from tests.delivery.test_delivery import SECRET, Receiver, approve_one, configure_webhook, run_until_settled

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_allow_list(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = []
    return settings


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("2002:7f00:1::", "a loopback address"),  # 6to4 wrapping 127.0.0.1
        ("10.1.2.3", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("169.254.10.20", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("100.64.0.1", "a non-public address"),  # carrier-grade NAT
    ],
)
def test_non_public_addresses_are_named(address, reason):
    assert outbound.address_problem(address) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert outbound.address_problem(address) is None


# --- save time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("https://10.0.0.5/hook", "10.0.0.5 is a private address"),
        ("https://[::1]:8443/hook", "::1 is a loopback address"),
        ("https://[::ffff:127.0.0.1]/hook", "is a loopback address"),
        ("https://localhost/hook", "localhost is a loopback address"),
        ("https://ci.localhost/hook", "ci.localhost is a loopback address"),
        ("https://metadata.google.internal/computeMetadata/v1/", "a cloud metadata address"),
        ("https://2130706433/hook", "2130706433 resolves to a loopback address"),  # 127.0.0.1 as a number
        ("https://0x7f.1/hook", "resolves to a loopback address"),
        ("http://ci.example.com/hook", "must use https://"),
        ("ftp://ci.example.com/hook", "must be an absolute https:// URL"),
        ("https://user:pass@ci.example.com/hook", "must not contain a user name or password"),
        ("https:///nohost", "must be an absolute https:// URL"),
    ],
)
def test_refused_destinations_are_named_at_validation(no_allow_list, url, expected):
    problem = outbound.url_problem(url)
    assert problem is not None and expected in problem


def test_public_https_urls_and_allow_listed_hosts_pass(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = ["10.20.0.0/16", "ci.internal", ".corp.example"]
    assert outbound.url_problem("https://8.8.8.8/hook") is None
    assert outbound.url_problem("https://10.20.1.2/hook") is None
    assert outbound.url_problem("http://ci.internal:8080/hook") is None  # http allowed for allow-listed hosts
    assert outbound.url_problem("https://jenkins.corp.example/hook") is None
    assert "10.21.0.1 is a private address" in outbound.url_problem("https://10.21.0.1/hook")
    assert "must use https" in outbound.url_problem("http://8.8.8.8/hook")


def test_plain_http_is_allowed_only_in_debug(no_allow_list):
    no_allow_list.DEBUG = True
    assert outbound.url_problem("http://8.8.8.8/hook") is None
    assert "loopback" in outbound.url_problem("http://127.0.0.1/hook")  # DEBUG does not open internal addresses


def test_a_bad_allow_list_entry_is_named():
    with pytest.raises(ValueError, match="neither a host name"):
        outbound.parse_allow_list(["ci.internal", "https://x/"])


def test_the_webhook_endpoint_admin_refuses_an_internal_destination(client, environment, no_allow_list):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    for url, words in [("https://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
                       ("https://192.168.0.10/hook", "192.168.0.10 is a private address"),
                       ("http://ci.example.com/hook", "The URL must use https://")]:
        response = client.post(reverse("admin:deployments_webhookendpoint_add"),
                               {"environment": environment.pk, "url": url, "is_active": "on", "secret": "x" * 20})
        assert response.status_code == 200, url
        assert words in response.content.decode(), url
    assert not WebhookEndpoint.objects.exists()


def test_the_model_refuses_an_internal_destination_on_full_clean(environment, no_allow_list):
    endpoint = WebhookEndpoint(environment=environment, url="https://10.9.8.7/hook")
    with pytest.raises(Exception, match="private address"):
        endpoint.full_clean()


@pytest.mark.parametrize(
    ("kind", "url", "words"),
    [
        (ChatKind.JSON, "https://169.254.169.254/hook", "cloud metadata address"),
        (ChatKind.JSON, "https://172.20.0.3/hook", "private address"),
        (ChatKind.TEAMS, "https://[fe80::1]/workflows/x", "link-local address"),
        (ChatKind.JSON, "http://chat.example.com/hook", "https"),
    ],
)
def test_a_chat_channel_to_an_internal_destination_is_refused(environment, no_allow_list, kind, url, words):
    form = ChatChannelForm(data={"environment": environment.pk, "name": "#x", "kind": kind, "is_active": True,
                                 "webhook_url": url})
    assert not form.is_valid()
    assert words in str(form.errors["webhook_url"])
    assert not ChatChannel.objects.exists()


# --- connect time -------------------------------------------------------------------------------


def _receiver(httpserver, path="/hook"):
    httpserver.expect_request(path).respond_with_data("ok")
    return httpserver.url_for(path)


def test_the_session_refuses_a_name_resolving_to_loopback_before_sending(httpserver, no_allow_list):
    no_allow_list.DEBUG = True  # plain http passes the scheme rule: the address check is what refuses
    url = _receiver(httpserver)
    assert url.startswith("http://localhost:")
    with pytest.raises(outbound.OutboundRefused, match="localhost resolves to a loopback address"):
        outbound.session().post(url, data=b"secret payload", timeout=5)
    assert httpserver.log == []


def test_the_session_connects_to_allow_listed_hosts(httpserver, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = ["localhost"]
    url = _receiver(httpserver)
    assert outbound.session().post(url, data=b"x", timeout=5).status_code == 200
    assert len(httpserver.log) == 1


def test_an_allow_listed_network_is_checked_on_the_resolved_address(httpserver, settings):
    settings.DEBUG = True
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8", "::1"]  # the network, not the name
    url = _receiver(httpserver)
    assert outbound.session().get(url, timeout=5).status_code == 200


def test_environment_proxies_are_not_used(httpserver, settings, monkeypatch):
    settings.PORTAL_OUTBOUND_ALLOWED_HOSTS = ["localhost"]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would fail the call if it were used
    url = _receiver(httpserver)
    assert outbound.session().get(url, timeout=5).status_code == 200


def test_a_webhook_whose_name_now_resolves_to_loopback_is_refused_at_connect(
    httpserver, environment, submit, approvers, no_allow_list
):
    """The URL passed at save (imagine a public answer then: DNS rebinding); at send time it resolves to
    loopback, which is not allow-listed: nothing is sent, and the delivery fails with the policy's reason."""
    no_allow_list.DEBUG = True
    receiver = Receiver(httpserver, [200])
    # objects.create skips validation, as a save that resolved publicly would have passed it.
    WebhookEndpoint.objects.create(environment=environment, url=receiver.url, secret_ciphertext=encrypt_secret(SECRET))
    request = approve_one(submit, approvers)
    row = run_until_settled(DecisionDelivery.objects.get(request=request))
    assert receiver.received == [] and httpserver.log == []
    assert row.status == DeliveryStatus.FAILED  # retrying cannot help: permanent
    assert row.last_error == "destination refused by outbound policy: localhost resolves to a loopback address"
    assert DeliveryAttempt.objects.get(delivery=row).error == row.last_error


def test_the_guard_applies_the_check_to_plain_requests_calls_such_as_apprise_makes(httpserver, no_allow_list):
    url = _receiver(httpserver)
    with outbound.guard() as refusals, pytest.raises(outbound.OutboundRefused):
        requests.post(url, data=b"x", timeout=5)
    assert refusals == ["localhost resolves to a loopback address"]
    assert httpserver.log == []
    # Outside the guard urllib3 behaves as before.
    assert requests.get(url, timeout=5).status_code == 200


def test_apprise_inside_the_guard_sends_nothing_to_a_refused_address(httpserver, no_allow_list):
    httpserver.expect_request("/hooks/chat").respond_with_json({"ok": True})
    notifier = apprise.Apprise()
    assert notifier.add(notifications.apprise_url(ChatKind.JSON, httpserver.url_for("/hooks/chat")))
    with outbound.guard() as refusals:
        assert not notifier.notify(title="t", body="b")
    assert refusals and "loopback" in refusals[0]
    assert httpserver.log == []


def test_a_chat_channel_resolving_to_loopback_is_refused_at_send(
    httpserver, environment, submit, no_allow_list, django_capture_on_commit_callbacks
):
    no_allow_list.DEBUG = True
    httpserver.expect_request("/hooks/deploys").respond_with_json({"ok": True})
    channel = ChatChannel(environment=environment, name="#deploys", kind=ChatKind.JSON)
    channel.set_webhook_url(httpserver.url_for("/hooks/deploys"))  # stored without the form (before a rebinding)
    channel.save()
    factories.approver(environment, username="carla")
    with django_capture_on_commit_callbacks(execute=True):
        submit()
    log = NotificationLog.objects.get(chat_channel=channel)
    assert httpserver.log == []
    assert "outbound policy" in log.last_error.lower() and "loopback" in log.last_error
    assert "/hooks/deploys" not in log.last_error


# --- what failures leave behind -----------------------------------------------------------------

MARKER = "RECEIVER-MARKER-5f1c"


def attempt_once(request):
    row = DecisionDelivery.objects.get(request=request)
    delivery.attempt_delivery(delivery_id=row.pk, now=row.next_attempt_at)
    row.refresh_from_db()
    return row


def _all_stored_text(row) -> str:
    attempts = list(DeliveryAttempt.objects.filter(delivery=row).values())
    return json.dumps([DecisionDelivery.objects.filter(pk=row.pk).values().get(), attempts], default=str)


def test_a_receivers_body_and_reason_phrase_are_never_stored(httpserver, environment, submit, approvers, client):
    httpserver.expect_request("/hook").respond_with_response(
        Response(f"<html>{MARKER} stack trace, internal hostnames</html>", status=f"500 {MARKER}")
    )
    configure_webhook(environment, httpserver.url_for("/hook"))
    row = attempt_once(approve_one(submit, approvers))
    assert row.last_error == "HTTP 500 Internal Server Error"
    assert DeliveryAttempt.objects.get(delivery=row).error == "HTTP 500 Internal Server Error"
    assert MARKER not in _all_stored_text(row)
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    page = client.get(reverse("admin:deployments_decisiondelivery_change", args=[row.pk])).content.decode()
    assert "HTTP 500 Internal Server Error" in page and MARKER not in page


def test_a_4xx_answer_keeps_only_its_status(httpserver, environment, submit, approvers):
    httpserver.expect_request("/hook").respond_with_data(f"{MARKER}: bad signature", status=401)
    configure_webhook(environment, httpserver.url_for("/hook"))
    row = attempt_once(approve_one(submit, approvers))
    assert row.status == DeliveryStatus.FAILED and row.last_error == "HTTP 401 Unauthorized"
    assert MARKER not in _all_stored_text(row)


def test_a_receiver_too_slow_leaves_a_timeout_reason(httpserver, environment, submit, approvers, settings):
    settings.PORTAL_HTTP_TIMEOUT = 0.5

    def slow(request):
        time.sleep(1.5)
        return Response(MARKER, status=200)

    httpserver.expect_request("/hook").respond_with_handler(slow)
    configure_webhook(environment, httpserver.url_for("/hook"))
    row = attempt_once(approve_one(submit, approvers))
    assert row.status == DeliveryStatus.PENDING and row.last_error == "timeout after 0.5 s"


def test_a_chat_receivers_answer_is_never_stored(
    httpserver, environment, submit, django_capture_on_commit_callbacks
):
    httpserver.expect_request("/hooks/deploys").respond_with_data(f"{MARKER} go away", status=500)
    channel = ChatChannel(environment=environment, name="#deploys", kind=ChatKind.JSON)
    channel.set_webhook_url(httpserver.url_for("/hooks/deploys"))
    channel.save()
    with django_capture_on_commit_callbacks(execute=True):
        submit()
    log = NotificationLog.objects.get(chat_channel=channel)
    assert log.last_error and MARKER not in log.last_error
    assert len(httpserver.log) >= 1


@pytest.mark.parametrize(
    ("code", "text"), [(500, "HTTP 500 Internal Server Error"), (429, "HTTP 429 Too Many Requests"), (599, "HTTP 599")]
)
def test_status_descriptions_come_from_the_code_alone(code, text):
    assert outbound.describe_status(code) == text
