import pytest

from tests.portal.processes import manage, production_env


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory):
    """A var directory whose staticfiles/ holds what ``manage.py collectstatic`` makes in production
    (hashed names, gzip and Brotli copies): collected once per run, shared by the tests that start
    gunicorn (it takes ~25 s)."""
    var_dir = tmp_path_factory.mktemp("production-var")
    manage(production_env(var_dir, DATABASE_URL=f"sqlite:///{var_dir / 'unused.sqlite3'}"),
           "collectstatic", "--noinput")
    return var_dir
