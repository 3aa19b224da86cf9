"""Schemathesis against the generated OpenAPI schema, in-process (WSGI), with bounded examples:
no 5xx, and every response (errors included) conforms to the schema."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from compliance.people.roles import Role
from deployments.api import tokens
from deployments.gate import services
from tests import factories

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]


def _load_schema():
    """The schema as /api/schema/ serves it (generated without a request or the database)."""
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    spec = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(spec)
    loaded.app = get_wsgi_application()
    return loaded


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Like Django's test client: the in-process WSGI calls must not close the test's DB connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(params=["administrator", "engineer"])
def fuzz_token(db, request):
    """Two callers, each with a request to act on: one who may do a bit of everything, and an
    engineer who may only request (every other call must be refused in the documented shape)."""
    environment = factories.make_environment(name="staging")
    everything = request.param == "administrator"
    roles = [Role.ENGINEER, Role.APPROVER, Role.ADMINISTRATOR] if everything else [Role.ENGINEER]
    user = factories.UserFactory(username=f"fuzzer-{request.param}", roles=roles)
    factories.grant(user, "request", environment)
    if everything:
        factories.grant(user, "approve", environment)
    services.submit_request(actor=user, environment=environment, sha=factories.sha(), ref="main")
    _, clear = tokens.create_api_token(actor=user, user=user, name="fuzz")
    return clear


schema = _load_schema()


@schema.parametrize()
@settings(max_examples=4, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@pytest.mark.django_db
def test_the_api_conforms_to_its_schema(case, fuzz_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_token}"}, checks=CHECKS)
