"""A reusable permission matrix for API endpoints (NetBox-style generic endpoint tests).

``ApiWorld`` builds the eight callers every endpoint is checked against; ``PermissionMatrix.check``
calls one endpoint as each of them inside a savepoint (so every caller starts from the same state)
and asserts the status, the common error format for refusals, an audit entry with the caller as
actor for accepted writes, and no state change for refused ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from auditlog.models import LogEntry
from django.db import transaction
from django.test import Client

from compliance.people.roles import Role
from deployments.api import tokens
from deployments.choices import TokenAction
from deployments.models import Approval, DeploymentRequest, Environment, Execution, Service
from tests import factories

PERSONAS = ("anonymous", "outsider", "engineer", "approver", "auditor", "administrator", "sa_in_scope",
            "sa_out_of_scope")


@dataclass
class ApiWorld:
    env: Environment
    other_env: Environment
    request: DeploymentRequest
    users: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)

    @classmethod
    def build(cls) -> ApiWorld:
        env = factories.make_environment(name="staging")
        other_env = factories.make_environment(name="staging")
        users = {
            "outsider": factories.UserFactory(username="olga-outsider"),
            "engineer": factories.engineer(env, username="erik-engineer"),
            "approver": factories.approver(env, username="anna-approver"),
            "auditor": factories.UserFactory(username="aude-auditor", roles=[Role.AUDITOR]),
            "administrator": factories.UserFactory(username="adam-admin", roles=[Role.ADMINISTRATOR]),
            "sa_in_scope": factories.UserFactory(username="ci-in", is_service_account=True),
            "sa_out_of_scope": factories.UserFactory(username="ci-out", is_service_account=True),
        }
        factories.grant(users["sa_in_scope"], "request", env)
        factories.grant(users["sa_out_of_scope"], "request", other_env)
        ci_actions = [TokenAction.READ, TokenAction.REQUEST, TokenAction.EXECUTE]
        issued = {}
        for name, user in users.items():
            scope = {}
            if name == "sa_in_scope":
                scope = {"services": [env.service], "actions": ci_actions}
            elif name == "sa_out_of_scope":
                scope = {"services": [other_env.service], "actions": ci_actions}
            # People make their own tokens; administrators make the service accounts' ones.
            actor = users["administrator"] if user.is_service_account else user
            _, issued[name] = tokens.create_api_token(actor=actor, user=user, name=f"{name} token", **scope)
        from deployments.gate import services

        request = services.submit_request(actor=users["engineer"], environment=env, sha=factories.sha(), ref="main")
        return cls(env=env, other_env=other_env, request=request, users=users, tokens=issued)

    def client_for(self, persona: str) -> Client:
        client = Client()
        if persona != "anonymous":
            client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {self.tokens[persona]}"
        return client


@dataclass
class Endpoint:
    method: str
    path: str  # formatted with the world: {env}, {other_env}, {request}, {service}, {policy}
    expected: dict[str, int]
    body: dict | None = None

    def url(self, world: ApiWorld) -> str:
        return self.path.format(env=world.env.pk, request=world.request.pk, service=world.env.service_id,
                                policy=world.env.policy.pk, service_name=world.env.service.name)

    def payload(self, world: ApiWorld):
        if self.body is None:
            return None
        text = json.dumps(self.body)
        return text.replace("%SERVICE%", world.env.service.name).replace("%ENV%", world.env.name)


def _state(world: ApiWorld) -> tuple:
    request = DeploymentRequest.objects.get(pk=world.request.pk)
    return (
        request.status, request.updated_at, request.checks,
        Approval.objects.count(), Execution.objects.count(), DeploymentRequest.objects.count(),
        Service.objects.count(), Environment.objects.count(),
        tuple(Service.objects.order_by("pk").values_list("display_name", flat=True)),
        world.env.policy.__class__.objects.get(pk=world.env.policy.pk).version,
    )


class PermissionMatrix:
    """Mixin: call ``self.check(endpoint, world)`` for each endpoint of the API."""

    def check(self, endpoint: Endpoint, world: ApiWorld) -> None:
        assert set(endpoint.expected) == set(PERSONAS), f"{endpoint.path}: give every persona an expectation"
        failures = []
        for persona in PERSONAS:
            with transaction.atomic():
                before = _state(world)
                last_entry = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
                client = world.client_for(persona)
                kwargs = {}
                if endpoint.method != "get":
                    kwargs = {"data": endpoint.payload(world) or "{}", "content_type": "application/json"}
                response = getattr(client, endpoint.method)(endpoint.url(world), **kwargs)
                expected = endpoint.expected[persona]
                if response.status_code != expected:
                    got = f"{response.status_code} {response.content[:200]!r}"
                    failures.append(f"{persona}: expected {expected}, got {got}")
                elif response.status_code >= 400:
                    error = response.json().get("error", {})
                    if not {"code", "message", "details"} <= set(error):
                        failures.append(f"{persona}: error not in the common format: {response.content[:200]!r}")
                    if endpoint.method != "get" and _state(world) != before:
                        failures.append(f"{persona}: a refused write changed state")
                elif endpoint.method != "get":
                    user = world.users[persona]
                    if not LogEntry.objects.filter(pk__gt=last_entry, actor=user).exists():
                        failures.append(f"{persona}: no audit entry with the caller as actor")
                transaction.set_rollback(True)
        assert not failures, f"{endpoint.method.upper()} {endpoint.path}:\n" + "\n".join(failures)
