"""The portal as production serves it: gunicorn with portal.gunicorn_conf, DEBUG off, behind a TLS
proxy, static files collected and served by WhiteNoise. Pages get their stylesheet and scripts, the
Swagger UI its assets, all with hashed names and a year's cache; gunicorn's own refusals (oversize
request line, too many headers) answer in the portal's error format; logs are JSON lines."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.portal.processes import free_port, gunicorn, manage, production_env, wait_until_answering

pytestmark = pytest.mark.whole_system

PROXY = {"X-Forwarded-Proto": "https"}  # what the TLS proxy adds; without it the portal redirects to https
ASSET = re.compile(r'<(?:link|script)[^>]+(?:href|src)="([^"]+)"')


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={**PROXY, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def raw(port: int, request: bytes) -> tuple[str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


@pytest.fixture(scope="module")
def portal(collected_static, tmp_path_factory):
    logs = tmp_path_factory.mktemp("production-logs")
    env = production_env(collected_static, DATABASE_URL=f"sqlite:///{logs / 'portal.sqlite3'}",
                         PORTAL_INTEGRATIONS="")
    # The sign-in page lists the single sign-on providers configured in the database (allauth).
    manage(env, "migrate", "--noinput")
    port = free_port()
    web = gunicorn("web", port, env, logs)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", web)
        yield {"url": f"http://127.0.0.1:{port}", "port": port, "process": web}
    finally:
        web.stop()


def assert_served_for_a_year(url: str) -> None:
    status, headers, body = get(url, {"Accept-Encoding": "gzip, br"})
    assert status == 200, url
    assert body
    assert "max-age=31536000" in headers["cache-control"] and "immutable" in headers["cache-control"], headers
    if url.endswith((".css", ".js")):
        assert headers.get("content-encoding") in {"br", "gzip"}, (url, headers)


def test_pages_get_their_stylesheet_and_scripts_with_hashed_names(portal):
    status, _, page = get(f"{portal['url']}/accounts/login/")
    assert status == 200, portal["process"].output()[-4000:]
    assets = ASSET.findall(page.decode())
    assert any(re.search(r"/static/css/portal\.[0-9a-f]{12}\.css$", a) for a in assets), assets
    assert any(re.search(r"/static/vendor/htmx/htmx\.min\.[0-9a-f]{12}\.js$", a) for a in assets), assets
    for asset in assets:
        assert_served_for_a_year(portal["url"] + asset)


def test_the_swagger_ui_gets_its_assets(portal):
    status, _, page = get(f"{portal['url']}/api/docs/")
    assert status == 200
    assets = ASSET.findall(page.decode())
    static = [a for a in assets if a.startswith("/static/")]
    assert any("swagger-ui-bundle" in a for a in static) and any("swagger-ui." in a and a.endswith(".css")
                                                                   for a in static), assets
    for asset in static:
        assert_served_for_a_year(portal["url"] + asset)
    script = next(a for a in assets if a.startswith("/api/docs/?script")).replace("&amp;", "&")
    status, headers, _ = get(portal["url"] + script)
    assert status == 200 and "javascript" in headers["content-type"]


def test_an_unknown_static_file_is_a_404(portal):
    assert get(f"{portal['url']}/static/css/nothing-here.css")[0] == 404


def test_an_oversize_request_line_answers_in_the_portals_error_format(portal):
    line = b"GET /api/v1/requests/?sha=" + b"a" * 5000 + b" HTTP/1.1\r\n"
    head, body = raw(portal["port"], line + b"Host: 127.0.0.1\r\n\r\n")
    assert head.startswith("HTTP/1.1 400") and "application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == "request_line_too_long" and error["details"] == {"limit_bytes": 4094}


def test_too_many_header_fields_answer_in_the_portals_error_format(portal):
    headers = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(120))
    head, body = raw(portal["port"], b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    assert head.startswith("HTTP/1.1 431") and "application/json" in head
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"


def test_logs_are_one_json_object_per_line_with_the_request_id(portal):
    status, headers, _ = get(f"{portal['url']}/healthz", {"X-Request-ID": "proxy-id-12345678"})
    assert status == 200 and headers["x-request-id"] == "proxy-id-12345678"  # trusted behind the proxy
    for _ in range(50):  # gunicorn writes its access line just after the answer
        lines = [json.loads(line) for line in portal["process"].output().splitlines() if line.startswith("{")]
        access = [line for line in lines if line.get("logger") == "gunicorn.access" and line.get("path") == "/healthz"]
        portal_lines = [line for line in lines if line.get("logger") == "portal.request"]
        if any(line.get("request_id") == "proxy-id-12345678" for line in access):
            break
        time.sleep(0.1)
    assert any(line.get("request_id") == "proxy-id-12345678" and line["status"] == 200 for line in access), lines[-5:]
    assert any(line.get("request_id") == "proxy-id-12345678" for line in portal_lines)
    assert any(line.get("logger") == "gunicorn.error" for line in lines)  # gunicorn's own messages too
