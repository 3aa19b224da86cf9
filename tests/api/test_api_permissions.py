"""Every API endpoint × every kind of caller (see tests/api_matrix.py)."""

import pytest

from tests.api_matrix import ApiWorld, Endpoint, PermissionMatrix

pytestmark = pytest.mark.django_db


def row(anonymous, outsider, engineer, approver, auditor, administrator, sa_in_scope, sa_out_of_scope):
    return dict(anonymous=anonymous, outsider=outsider, engineer=engineer, approver=approver, auditor=auditor,
                administrator=administrator, sa_in_scope=sa_in_scope, sa_out_of_scope=sa_out_of_scope)


READ_ALL = row(401, 200, 200, 200, 200, 200, 200, 200)
READ_IN_SCOPE = row(401, 404, 200, 200, 200, 200, 200, 404)
ADMIN_WRITE = row(401, 403, 403, 403, 403, None, 403, 403)
SHA = "a" * 40

ENDPOINTS = [
    Endpoint("get", "/api/v1/me/", READ_ALL),
    Endpoint("get", "/api/v1/services/", READ_ALL),
    Endpoint("get", "/api/v1/services/{service}/", READ_IN_SCOPE),
    Endpoint("post", "/api/v1/services/", {**ADMIN_WRITE, "administrator": 201},
             {"name": "new-service", "repository": "acme/new-service"}),
    Endpoint("patch", "/api/v1/services/{service}/", {**ADMIN_WRITE, "administrator": 200},
             {"display_name": "Renamed"}),
    Endpoint("get", "/api/v1/environments/", READ_ALL),
    Endpoint("get", "/api/v1/environments/{env}/", READ_IN_SCOPE),
    Endpoint("post", "/api/v1/environments/", {**ADMIN_WRITE, "administrator": 201},
             {"service": "%SERVICE%", "name": "production", "tier": "production"}),
    Endpoint("get", "/api/v1/policies/", READ_ALL),
    Endpoint("get", "/api/v1/policies/{policy}/", READ_IN_SCOPE),
    Endpoint("patch", "/api/v1/policies/{policy}/", {**ADMIN_WRITE, "administrator": 200},
             {"required_approvals": 2}),
    Endpoint("get", "/api/v1/requests/", READ_ALL),
    Endpoint("get", "/api/v1/requests/{request}/", READ_IN_SCOPE),
    Endpoint("get", "/api/v1/requests/{request}/status/", READ_IN_SCOPE),
    Endpoint("post", "/api/v1/requests/", row(401, 404, 201, 404, 404, 404, 201, 404),
             {"service": "%SERVICE%", "environment": "%ENV%", "sha": SHA, "ref": "main"}),
    Endpoint("post", "/api/v1/requests/{request}/cancel/", row(401, 404, 200, 403, 403, 200, 403, 403),
             {"reason": "No longer needed."}),
    Endpoint("post", "/api/v1/requests/{request}/approve/", row(401, 404, 403, 200, 403, 403, 403, 403),
             {"checklist": {"Impact on production assessed": True, "Meets coding standards": True,
                            "Meets security requirements": True, "Meets business rules": True}}),
    Endpoint("post", "/api/v1/requests/{request}/reject/", row(401, 404, 403, 200, 403, 403, 403, 403),
             {"comment": "Not now."}),
    Endpoint("post", "/api/v1/requests/{request}/checks/", row(401, 404, 200, 403, 403, 403, 200, 404),
             {"checks": {"unit": "success"}}),
    Endpoint("post", "/api/v1/requests/{request}/executions/", row(401, 404, 201, 403, 403, 403, 201, 404),
             {"status": "started"}),
]


class TestEveryEndpointForEveryCaller(PermissionMatrix):
    @pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
    def test_permission_matrix(self, endpoint):
        self.check(endpoint, ApiWorld.build())


def test_lists_show_only_what_the_caller_may_see(client):
    world = ApiWorld.build()
    expectations = {
        "outsider": (0, 0, 0), "engineer": (1, 1, 1), "approver": (1, 1, 1), "auditor": (2, 2, 1),
        "administrator": (2, 2, 1), "sa_in_scope": (1, 1, 1), "sa_out_of_scope": (1, 1, 0),
    }
    for persona, (services, environments, requests) in expectations.items():
        c = world.client_for(persona)
        counts = tuple(c.get(f"/api/v1/{name}/").json()["count"] for name in ("services", "environments", "requests"))
        assert counts == (services, environments, requests), persona
