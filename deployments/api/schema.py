"""OpenAPI generation: every operation documents the common error responses it can give."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from deployments.api.errors import ErrorSerializer

ERROR_DESCRIPTIONS = {
    "400": "Invalid input (malformed JSON, wrong types, unknown fields, a control character in the query).",
    "401": "Missing, invalid, expired or revoked credentials.",
    "403": "Authenticated, but not allowed to do this.",
    "404": "No such object within your scope.",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "409": "Refused by a rule of the policy, or in conflict with the current state.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "422": "The Idempotency-Key was already used with a different body.",
}


class PortalAutoSchema(AutoSchema):
    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        from deployments.api.serializers import StrictInput

        if direction == "request" and isinstance(serializer, StrictInput) and schema.get("type") == "object":
            schema["additionalProperties"] = False  # unknown fields are refused (400 unknown_field)
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        from deployments.api.serializers import NamedDictField

        patterns = [v.regex.pattern for v in getattr(field, "validators", ()) if isinstance(v, RegexValidator)
                    and not v.inverse_match]
        if patterns and schema.get("type") == "string" and "pattern" not in schema:
            schema["pattern"] = patterns[0]
        if isinstance(field, NamedDictField):
            schema["propertyNames"] = {"type": "string", "minLength": 1, "maxLength": field.max_key_length,
                                       "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"}
            if field.max_items is not None:
                schema["maxProperties"] = field.max_items
            if not field.allow_empty:
                schema["minProperties"] = 1
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["401", "403", "404", "405", "406"]
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["400", "409", "413", "415"]
        if getattr(self.view, "idempotent_create", False) and self.method == "POST":
            codes += ["422"]
        if self.method not in ("POST", "PUT", "PATCH"):
            # Bad filter values, and a control character in any query string (portal.middleware).
            codes.append("400")
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]), code,
                    direction=direction,
                )
        return responses


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "deployments.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token (dap_…). It acts only as its owner: people create their own on "
                               "My API tokens (/tokens/); administrators create service-account tokens in the "
                               "admin or with manage.py create_api_token. A token may be limited to actions "
                               "(403 token_scope) and to services/environments (others are 404)."}
