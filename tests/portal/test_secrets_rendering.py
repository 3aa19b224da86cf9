"""Secrets are never rendered, on any admin page, for anyone — view-only auditors included — nor kept
in an audit diff.

Discovery is generic: every model registered in the admin whose fields follow the secret naming
convention (``*_encrypted``, ``*_ciphertext``, ``secret_hash``) must appear in ``SECRET_BEARING`` below
with a maker that stores a known secret; a new secret-bearing model without one fails
``test_every_secret_bearing_model_is_covered``. For an ``X_encrypted`` field the decrypting property
``X`` (e.g. ``ChatChannel.webhook_url``) is the clear value that must not appear.
"""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from django.contrib import admin
from django.urls import reverse

from compliance.people.roles import Role
from deployments.api import tokens
from deployments.delivery.secrets import encrypt_secret
from deployments.models import ApiToken, WebhookEndpoint
from deployments.notifications.models import ChatChannel, ChatKind
from tests import factories

pytestmark = pytest.mark.django_db

SECRET_SUFFIXES = ("_encrypted", "_ciphertext")
SECRET_NAMES = {"secret_hash"}


def secret_fields(model) -> list[str]:
    return [f.name for f in model._meta.get_fields()
            if getattr(f, "concrete", False) and (f.name.endswith(SECRET_SUFFIXES) or f.name in SECRET_NAMES)]


def secret_bearing_admin_models() -> set[str]:
    return {model._meta.label for model in admin.site._registry if secret_fields(model)}


def _stored_values(obj) -> list[str]:
    """The stored forms (ciphertext, hash) and, for ``X_encrypted``, the decrypted property ``X``."""
    values = []
    for name in secret_fields(obj):
        stored = getattr(obj, name)
        values.append(stored)
        if name.endswith("_encrypted") and isinstance(getattr(type(obj), name.removesuffix("_encrypted"), None),
                                                      property):
            values.append(getattr(obj, name.removesuffix("_encrypted")))
    return [v for v in values if v]


def make_chat_channel(environment, actor):
    clear = "https://hooks.slack.com/services/T0SECRET/B0SECRET/ChatSecretValue7788"
    channel = ChatChannel(environment=environment, name="#prod-deploys", kind=ChatKind.SLACK)
    channel.set_webhook_url(clear)
    channel.save()
    return channel, [clear, "ChatSecretValue7788"]


def make_webhook_endpoint(environment, actor):
    clear = "whsec-EndpointSecretValue-4455"
    endpoint = WebhookEndpoint.objects.create(environment=environment, url="https://ci.example.com/hook",
                                              secret_ciphertext=encrypt_secret(clear))
    return endpoint, [clear]


def make_api_token(environment, actor):
    token, clear = tokens.create_api_token(actor=actor, user=actor, name="ci")
    return token, [clear, tokens.parse(clear)[1]]  # the secret part may itself contain "_"


SECRET_BEARING = {
    "deployments.ChatChannel": make_chat_channel,
    "deployments.WebhookEndpoint": make_webhook_endpoint,
    "deployments.ApiToken": make_api_token,
}


def test_every_secret_bearing_model_is_covered():
    assert secret_bearing_admin_models() == set(SECRET_BEARING)


@pytest.fixture
def superuser(db):
    return factories.UserFactory(username="root-admin", is_superuser=True, is_staff=True)


@pytest.fixture
def auditor(db):
    return factories.UserFactory(username="audrey", roles=[Role.AUDITOR], is_staff=True)


@pytest.fixture
def administrator(db):
    return factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True)


def _pages(obj) -> list[str]:
    info = f"admin:{obj._meta.app_label}_{obj._meta.model_name}"
    pages = [reverse(f"{info}_changelist"), reverse(f"{info}_change", args=[obj.pk]),
             reverse(f"{info}_history", args=[obj.pk])]
    for entry in LogEntry.objects.get_for_object(obj):
        pages.append(reverse("admin:auditlog_logentry_change", args=[entry.pk]))
    return pages


@pytest.mark.parametrize("label", sorted(SECRET_BEARING))
@pytest.mark.parametrize("who", ["superuser", "administrator", "auditor"])
def test_no_admin_page_shows_the_secret(client, environment, superuser, administrator, auditor, label, who):
    person = {"superuser": superuser, "administrator": administrator, "auditor": auditor}[who]
    obj, clear_values = SECRET_BEARING[label](environment, superuser)
    obj.refresh_from_db()
    forbidden = [*clear_values, *_stored_values(obj)]
    assert forbidden and all(len(value) >= 12 for value in forbidden)
    client.force_login(person)
    rendered = 0
    for url in _pages(obj):
        response = client.get(url)
        if response.status_code == 403:  # e.g. an administrator without the log entry view permission
            continue
        assert response.status_code == 200, (url, response.status_code)
        html = response.content.decode()
        for value in forbidden:
            assert value not in html, f"{label}: {url} shows a secret to {who}"
        rendered += 1
    assert rendered >= 3


def test_the_auditor_sees_the_hint_of_a_chat_channel_read_only(client, environment, superuser, auditor):
    channel, _ = make_chat_channel(environment, superuser)
    client.force_login(auditor)
    html = client.get(reverse("admin:deployments_chatchannel_change", args=[channel.pk])).content.decode()
    assert channel.webhook_hint in html and "ChatSecretValue" not in html
    assert 'name="webhook_url"' not in html  # view-only: no form field at all


@pytest.mark.parametrize("label", sorted(SECRET_BEARING))
def test_audit_diffs_never_hold_the_secret(environment, superuser, label):
    obj, clear_values = SECRET_BEARING[label](environment, superuser)
    obj.refresh_from_db()
    forbidden = [*clear_values, *_stored_values(obj)]
    entries = LogEntry.objects.get_for_object(obj)
    assert entries.exists()
    dump = json.dumps([[e.changes, e.changes_text, e.additional_data] for e in entries], default=str)
    for value in forbidden:
        assert value not in dump
    for name in secret_fields(obj):
        assert name not in dump


def test_an_api_token_stores_only_a_hash(environment, superuser):
    token, clear = tokens.create_api_token(actor=superuser, user=superuser, name="ci")
    stored = json.dumps(list(ApiToken.objects.filter(pk=token.pk).values()), default=str)
    assert clear not in stored and tokens.parse(clear)[1] not in stored  # the secret part may hold "_"
