"""Input at the edges is a clear 400 or a correct answer, never a server error (SQLite and PostgreSQL).

Found by fuzzing on PostgreSQL: a time zone offset of ±16:00 or more was "time zone displacement out
of range", and a NUL in a check name was refused by the database, both as 500s.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from deployments.gate import services
from deployments.models import DeploymentRequest, Refusal
from tests import factories
from tests.api.test_api import api, assert_error, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_request(submit):
    return submit()


@pytest.mark.parametrize("offset", ["+16:00", "-16:00", "+23:59", "-23:30", "+00:00", "+05:45"])
def test_any_valid_offset_filters_by_the_moment_it_names(requester, one_request, offset):
    client = api(requester)
    created = DeploymentRequest.objects.get(pk=one_request.pk).created_at
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    shift = sign * timedelta(hours=hours, minutes=minutes)
    before = (created - timedelta(minutes=1)).astimezone(timezone.get_fixed_timezone(shift))
    after = (created + timedelta(minutes=1)).astimezone(timezone.get_fixed_timezone(shift))
    for name, moment, expected in (
        ("created_after", before, 1),
        ("created_before", before, 0),
        ("created_after", after, 0),
        ("created_before", after, 1),
    ):
        value = moment.isoformat()
        assert value.endswith(offset), value
        response = client.get(f"/api/v1/requests/?{name}={quote(value)}")
        assert response.status_code == 200, (name, value, response.content)
        assert response.json()["count"] == expected, (name, value)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+10:00", "9999-12-31T23:00:00-05:00"])
def test_a_moment_outside_the_calendar_in_utc_is_a_400(requester, one_request, value):
    error = assert_error(api(requester).get(f"/api/v1/requests/?created_after={quote(value)}"), 400, "invalid")
    assert "created_after" in error["details"]


def test_a_nul_in_a_check_name_is_refused_on_create(requester, environment):
    body = {
        "service": environment.service.name,
        "environment": environment.name,
        "sha": factories.sha(),
        "ref": "main",
        "checks": {"unit\u0000": "success"},
    }
    error = assert_error(post(api(requester), "/api/v1/requests/", body), 400, "invalid")
    assert "checks" in error["details"]
    assert DeploymentRequest.objects.count() == 0


def test_a_nul_in_a_check_name_is_refused_on_checks(requester, one_request):
    response = post(
        api(requester), f"/api/v1/requests/{one_request.pk}/checks/", {"checks": {"lint\u0000x": "success"}}
    )
    error = assert_error(response, 400, "invalid")
    assert "checks" in error["details"]
    one_request.refresh_from_db()
    assert "lint\u0000x" not in one_request.checks


@pytest.mark.parametrize("field", ["external_ids", "checklist"])
def test_a_nul_in_any_name_is_refused(requester, environment, one_request, approvers, field):
    if field == "external_ids":
        body = {
            "service": environment.service.name,
            "environment": environment.name,
            "sha": factories.sha(),
            "ref": "main",
            "external_ids": {"run\u0000": "1"},
        }
        response = post(api(requester), "/api/v1/requests/", body)
    else:
        response = post(
            api(approvers[0]), f"/api/v1/requests/{one_request.pk}/approve/", {"checklist": {"tested\u0000": True}}
        )
    assert_error(response, 400, "invalid")


def test_the_services_refuse_a_nul_in_a_check_name_too(requester, one_request):
    from compliance.errors import RuleViolation

    with pytest.raises(RuleViolation) as refused:
        services.record_checks(actor=requester, request=one_request, checks={"unit\u0000": "success"})
    assert refused.value.code == "invalid_checks"
    assert Refusal.objects.filter(code="invalid_checks").exists()


# --- the schema tells the truth ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["to", "from", "service"])
def test_an_empty_report_filter_is_refused_by_the_api(db, name):
    from compliance.people.roles import Role

    auditor = factories.UserFactory(username="audrey", roles=[Role.AUDITOR])
    response = api(auditor).get(f"/api/v1/reports/deployment-authorization-log/?{name}=")
    error = assert_error(response, 400, "invalid")
    assert name in error["details"]


def test_a_service_that_does_not_exist_is_not_found_and_a_taken_name_is_a_conflict(db):
    from compliance.people.roles import Role

    admin = factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR])
    client = api(admin)
    assert_error(post(client, "/api/v1/environments/", {"service": "nothing", "name": "prod"}), 404, "unknown_service")
    body = {"name": "billing", "repository": "acme/billing"}
    assert post(client, "/api/v1/services/", body).status_code == 201
    assert_error(post(client, "/api/v1/services/", body), 409, "service_exists")


def test_the_schema_refuses_unknown_fields_and_bounds_paging():
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    spec = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    schemas = spec["components"]["schemas"]
    for name in ("RequestCreateRequest", "ChecksRequest", "DecideRequest", "CancelRequest", "EnvironmentCreateRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["ChecksRequest"]["properties"]["checks"]["minProperties"] == 1
    assert "pattern" in schemas["EnvironmentCreateRequest"]["properties"]["name"]
    listing = spec["paths"]["/api/v1/requests/"]["get"]["parameters"]
    paging = {p["name"]: p["schema"] for p in listing if p["name"] in ("limit", "offset")}
    assert paging == {"limit": {"type": "integer", "minimum": 0}, "offset": {"type": "integer", "minimum": 0}}


def test_an_api_path_with_a_newline_is_the_apis_json_404_not_a_page(client):
    response = client.get("/api/v1/policies/a.%0Ab/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"


def test_the_schema_states_what_the_server_refuses_in_urls_texts_and_query_values():
    """Schema-valid means accepted: a URL host label over 63 characters, a whitespace-only required
    text and a control character in a query value are invalid in the schema, as on the server."""
    import re

    from drf_spectacular.generators import SchemaGenerator

    spec = SchemaGenerator().get_schema(request=None, public=True)
    body = spec["components"]["schemas"]["RequestCreateRequest"]["properties"]
    url = re.compile(next(b for b in body["source_url"]["oneOf"] if b.get("format") == "uri")["pattern"])
    assert url.search("https://ci.example.com/runs/7") and url.search("HTTPS://CI.Example.COM/")
    assert not url.search("https://" + "a" * 64 + ".example.com/")
    assert not url.search("https://" + ".".join(["a" * 63] * 4) + ".com/")  # over 253 in all
    author = re.compile(body["change_authors"]["items"]["pattern"])
    assert author.search("rita") and not author.search("   ") and not author.search("ri\x00ta")
    checks = body["checks"]
    assert checks["additionalProperties"] is False and checks["patternProperties"]
    filters = [p for p in spec["paths"]["/api/v1/requests/"]["get"]["parameters"]
               if p["in"] == "query" and p["schema"].get("type") == "string" and "enum" not in p["schema"]
               and "format" not in p["schema"]]
    assert filters and all(p["schema"]["pattern"] == "^[^\\u0000-\\u001f\\u007f-\\u009f]*$" for p in filters)
