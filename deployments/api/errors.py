"""One error format for every API error: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.response import Response

from compliance.errors import RuleViolation

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class SizeLimitedJSONParser(parsers.JSONParser):
    """JSON only, and never more than ``PORTAL_MAX_BODY_BYTES`` read from the wire."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.PORTAL_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        if request is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


DRF_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_token",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _flatten_codes(codes) -> set[str]:
    if isinstance(codes, dict):
        return set().union(*(_flatten_codes(v) for v in codes.values())) if codes else set()
    if isinstance(codes, list):
        return set().union(*(_flatten_codes(v) for v in codes)) if codes else set()
    return {str(codes)}


def _validation_message(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, errors in detail.items():
            first = errors[0] if isinstance(errors, list) and errors else errors
            if isinstance(first, dict):
                first = _validation_message(first)
            parts.append(f"{field}: {first}" if field != "non_field_errors" else str(first))
        return "; ".join(parts) or "Invalid input."
    if isinstance(detail, list):
        return "; ".join(str(d) for d in detail) or "Invalid input."
    return str(detail)


def api_exception_handler(exc, context):
    """DRF exception handler: every refusal, validation error and HTTP error in the common format."""
    from rest_framework.views import set_rollback  # here: rest_framework.views loads this module's parser

    headers = {}
    if isinstance(exc, RuleViolation):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, ProtectedError):
        set_rollback()
        return Response(error_body("protected", "This object is still referenced and cannot be removed."),
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, exceptions.ValidationError):
        codes = _flatten_codes(exc.get_codes())
        code = "unknown_field" if "unknown_field" in codes else "invalid"
        set_rollback()
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(error_body(code, _validation_message(exc.detail), details), status=exc.status_code)
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = f"{int(exc.wait)}"
        code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), None)
        detail_code = getattr(exc.detail, "code", None)
        if detail_code and detail_code not in {"error", "invalid", "parse_error", "permission_denied", "not_found"}:
            code = detail_code
        code = code or exc.default_code
        set_rollback()
        return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)
    logger.exception("Unhandled error in the API", exc_info=exc)
    set_rollback()
    return Response(error_body("server_error", "An unexpected error occurred; it has been logged."),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Unknown URLs under /api/ answer in the common format, not with an HTML page."""
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable code, e.g. self_approval.")
    message = serializers.CharField(help_text="What went wrong, naming the rule.")
    details = serializers.DictField(help_text="What the caller needs to fix it.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
