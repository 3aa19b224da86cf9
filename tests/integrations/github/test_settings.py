"""GitHub settings: bad values stop start-up naming the variable."""

import pytest

from tests.portal.test_settings import PRODUCTION, manage


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GITHUB_API_URL": "api.github.com"}, "GITHUB_API_URL"),
        ({"GITHUB_APP_ID": "my-app"}, "GITHUB_APP_ID"),
        ({"GITHUB_APP_PRIVATE_KEY": "not a key"}, "GITHUB_APP_PRIVATE_KEY"),
        ({"GITHUB_WEBHOOK_SECRET_FILE": "/nonexistent/secret"}, "GITHUB_WEBHOOK_SECRET_FILE"),
        ({"GITHUB_WEBHOOK_MAX_BYTES": "0"}, "GITHUB_WEBHOOK_MAX_BYTES"),
    ],
)
def test_a_bad_github_value_stops_start_up_naming_the_variable(env, variable):
    result = manage("check", env={**PRODUCTION, **env})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and variable in last_line, last_line
