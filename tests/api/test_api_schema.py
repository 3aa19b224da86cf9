"""Schemathesis against the generated OpenAPI schema, in-process (WSGI), with bounded examples:
no 5xx, every response (errors included) conforms to the schema, schema-invalid requests are refused
and schema-valid ones are not refused as invalid.

The budget is ``PORTAL_FUZZ_EXAMPLES`` examples per operation and caller (4 in CI); with
``PORTAL_FUZZ_LOG`` set, every case is written there as a JSON line (``bench/fuzz_api.py``, the
larger run, counts them)."""

import json
import os
import re

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from compliance.people.roles import Role
from deployments.api import tokens
from deployments.gate import services
from tests import factories

# Both directions: schema-invalid requests refused, schema-valid ones never refused as invalid input
# (a 400/422 for a request the schema allows is a mismatch; 401/403/404/409 are the caller's rights
# and the policy's rules, which the schema cannot know).
# Rules relating two query parameters, which JSON Schema cannot state (each told in its operation's
# description and refused with its own code): a schema-valid request refused by one of them is no mismatch.
CROSS_PARAMETER_RULES = {"invalid_period", "period_too_long"}


def _error_code(response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def positive_data_acceptance_but_cross_parameter_rules(ctx, response, case):
    if response.status_code == 400 and _error_code(response) in CROSS_PARAMETER_RULES:
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection, positive_data_acceptance_but_cross_parameter_rules]


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


EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "4"))
FUZZ_LOG = os.environ.get("PORTAL_FUZZ_LOG", "")


def _log(case, caller: str, status, failure: BaseException | None) -> None:
    if not FUZZ_LOG:
        return
    mode = getattr(getattr(getattr(case, "meta", None), "generation", None), "mode", "")
    titles = sorted(set(re.findall(r"- (ST\d+ [^\n]+)", str(failure)))) if failure else []
    line = {"operation": case.operation.label, "sent": case.method.upper(), "caller": caller, "mode": str(mode),
            "status": status, "failures": titles or ([type(failure).__name__] if failure else [])}
    with open(FUZZ_LOG, "a") as out:
        out.write(json.dumps(line) + "\n")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@pytest.mark.django_db
def test_the_api_conforms_to_its_schema(case, fuzz_token, request):
    caller = request.node.callspec.params.get("fuzz_token", "")
    try:
        response = case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_token}"}, checks=CHECKS)
    except BaseException as failure:  # schemathesis' FailureGroup is a BaseExceptionGroup
        _log(case, caller, getattr(getattr(failure, "response", None), "status_code", None), failure)
        raise
    _log(case, caller, response.status_code, None)
