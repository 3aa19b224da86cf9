"""Request ids and JSON log lines: the proxy's id when trusted and well-formed, else a new one; one
JSON object per line with the bound ids and the actor, and never a secret-looking field."""

import json
import logging
import socket

import pytest

from portal import gunicorn_errors
from portal.observability import JsonLineFormatter, LogContextFilter, log_context
from tests import factories

pytestmark = pytest.mark.django_db


def format_record(message="hello", **extra) -> dict:
    record = logging.LogRecord("portal.test", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    LogContextFilter().filter(record)
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


def test_every_response_carries_a_new_request_id(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32 and first != second


def test_the_proxys_request_id_is_kept_when_trusted_and_well_formed(client, settings):
    settings.PORTAL_TRUST_REQUEST_ID = True
    assert client.get("/healthz", headers={"X-Request-ID": "req-1234abcd"})["X-Request-ID"] == "req-1234abcd"
    for bad in ("short", "spaces are not allowed here", "x" * 129, "quote\"inside-1234"):
        assert client.get("/healthz", headers={"X-Request-ID": bad})["X-Request-ID"] != bad


def test_an_untrusted_request_id_is_replaced(client, settings):
    settings.PORTAL_TRUST_REQUEST_ID = False
    assert client.get("/healthz", headers={"X-Request-ID": "req-1234abcd"})["X-Request-ID"] != "req-1234abcd"


def test_the_request_log_line_names_the_request_id_and_the_actor(client, caplog):
    client.force_login(factories.UserFactory(username="ivy-operator"))
    with caplog.at_level(logging.INFO, logger="portal.request"):
        response = client.get("/healthz?search=private")
    [record] = [r for r in caplog.records if r.name == "portal.request"]
    line = json.loads(JsonLineFormatter().format(record))
    assert line["request_id"] == response["X-Request-ID"]
    assert line["actor"] == "ivy-operator"
    assert line["status"] == 200 and line["path"] == "/healthz" and "private" not in json.dumps(line)


def test_bound_ids_reach_every_line_and_nest():
    with log_context(deployment_request_id=7):
        with log_context(delivery_id=42):
            line = format_record()
        outer = format_record()
    assert line["deployment_request_id"] == 7 and line["delivery_id"] == 42
    assert "delivery_id" not in outer and outer["deployment_request_id"] == 7
    assert line["level"] == "WARNING" and line["logger"] == "portal.test" and line["message"] == "hello"
    assert "time" in line and "request_id" not in line


def test_secret_looking_fields_never_reach_the_line():
    line = format_record(api_token="dap_supersecret", webhook_secret="whsec", password="hunter2",
                         authorization="Bearer x", delivery_id=3)
    assert line["delivery_id"] == 3
    assert not {"api_token", "webhook_secret", "password", "authorization"} & set(line)
    assert "supersecret" not in json.dumps(line)


def test_gunicorns_own_refusal_is_written_in_the_portals_error_format():
    server, peer = socket.socketpair()
    with server, peer:
        gunicorn_errors.write_error(server, 400, "Bad Request", "Request Line is too large (5033 > 4094)")
        answer = peer.recv(65536).decode()
    head, body = answer.split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 400 Bad Request") and "Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}" in head
    assert json.loads(body) == {"error": {"code": "request_line_too_long", "details": {"limit_bytes": 4094},
                                          "message": json.loads(body)["error"]["message"]}}
    assert "4094 bytes" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize(("status", "message", "code"), [
    (431, "Error parsing headers: 'limit request headers fields'", "request_header_fields_too_large"),
    (400, "Invalid HTTP Version 'HTTP/9'", "bad_request"),
    (500, "", "server_error"),
])
def test_each_gunicorn_refusal_has_a_code(status, message, code):
    assert gunicorn_errors.error_body(status, "x", message)["error"]["code"] == code
