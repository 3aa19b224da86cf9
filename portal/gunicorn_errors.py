"""gunicorn's own refusals in the portal's error format.

gunicorn parses the request line and headers before any portal code runs; a request that breaks
its limits (``limit_request_line``, ``limit_request_fields``, ``limit_request_field_size``) or is
malformed is answered by gunicorn itself, with an HTML page. gunicorn writes that answer through
one function, ``gunicorn.util.write_error(sock, status, reason, message)``; ``install()`` (called by
``portal.gunicorn_conf``) replaces it with one that writes the portal's JSON error
``{"error": {"code", "message", "details"}}``, same status code, ``Connection: close``.
"""

from __future__ import annotations

import json
import re

import gunicorn.util

__all__ = ["error_body", "install"]

_TOO_LARGE = re.compile(r"\((\d+) > (\d+)\)")


def error_body(status: int, reason: str, message: str) -> dict:
    """The portal's error object for what gunicorn refused (its message names the limit)."""
    limit = _TOO_LARGE.search(message or "")
    details = {"limit_bytes": int(limit.group(2))} if limit else {}
    if status == 400 and message.startswith("Request Line is too large"):
        code = "request_line_too_long"
        limit_words = f" ({details['limit_bytes']} bytes)" if details else ""
        text = ("The request line (method, path and query string) is longer than this server accepts"
                f"{limit_words}; shorten the query.")
    elif status == 431:
        code = "request_header_fields_too_large"
        text = "The request has too many header fields, or one that is too large."
    elif status == 400:
        code = "bad_request"
        text = f"The server could not read this HTTP request: {message or reason}."
    elif status == 403:
        code = "permission_denied"
        text = "The request was refused."
    elif status == 501:
        code = "not_implemented"
        text = message or reason
    else:
        code = "server_error"
        text = "The server could not handle the request; it is logged."
    return {"error": {"code": code, "message": text, "details": details}}


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps(error_body(int(status_int), reason, mesg)).encode()
    head = (f"HTTP/1.1 {int(status_int)} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    gunicorn.util.write_nonblock(sock, head + body)


def install() -> None:
    gunicorn.util.write_error = write_error
