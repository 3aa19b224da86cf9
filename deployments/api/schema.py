"""OpenAPI generation: every operation documents the common error responses it can give."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

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


# What the portal refuses, said in the schema so that a client (or a fuzzer) knows it beforehand:
NO_CONTROL_CHARACTER = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"  # query values (portal.middleware)
NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,%d}$"  # keys of a name map (NamedDictField)
# DRF's text fields refuse NUL; a required one is trimmed and must not be left empty.
NO_NUL = "^[^\\u0000]*$"
NOT_ONLY_WHITESPACE = "^[^\\u0000]*[^\\u0000\\s][^\\u0000]*$"
# What Django's URLValidator accepts (the schemes of DRF's URLField; an IPv4 address,
# localhost, or a host name of labels of 1 to 63 characters, 253 in all, ending in a top-level domain),
# in ECMA-262 syntax: ``format: uri`` alone says none of it. The 253 are kept by counting (at most
# three labels before a top-level domain of at most 61 characters), not by a lookahead, which
# generators ignore. (Longer names, IPv6 literals and non-ASCII host names, which the server also
# accepts, are left out: the schema is never looser than the server.)
_OCTET = "(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)"
URL_PATTERN = (
    "^(?:[hH][tT][tT][pP][sS]?|[fF][tT][pP][sS]?)://(?:[^\\s:@/]+(?::[^\\s:@/]*)?@)?"
    f"(?:{_OCTET}(?:\\.{_OCTET}){{3}}|localhost|"
    "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.){1,3}[A-Za-z]{2,61}\\.?)"
    "(?::[0-9]{1,5})?(?:[/?#]\\S*)?$"
)


class PortalAutoSchema(AutoSchema):
    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            schema = parameter.get("schema") or {}
            if parameter.get("in") != "query":
                continue
            target = schema.get("items", {}) if schema.get("type") == "array" else schema
            if target.get("type") == "string" and not {"pattern", "enum", "format"} & set(target):
                target["pattern"] = NO_CONTROL_CHARACTER
        return parameters

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
        if direction == "request" and isinstance(field, serializers.URLField):
            # Django's own URL regex (a Python pattern: case-insensitive flag lost, \Z, lookbehinds)
            # is replaced by its ECMA-262 statement; a blank URL stays the other branch of oneOf.
            for branch in [schema, *schema.get("oneOf", ())]:
                if branch.get("format") == "uri":
                    branch["pattern"] = URL_PATTERN
        elif (direction == "request" and isinstance(field, serializers.CharField) and "enum" not in schema
              and "format" not in schema):
            for branch in [schema, *schema.get("oneOf", ())]:  # a blank-allowed text may be a oneOf
                if branch.get("type") == "string" and "pattern" not in branch and branch.get("maxLength") != 0:
                    required = field.trim_whitespace and not field.allow_blank
                    branch["pattern"] = NOT_ONLY_WHITESPACE if required else NO_NUL
        if isinstance(field, NamedDictField):
            schema["propertyNames"] = {"type": "string", "minLength": 1, "maxLength": field.max_key_length,
                                       "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"}
            # The same rule as patternProperties: generators (hypothesis-jsonschema) ignore propertyNames.
            values = schema.pop("additionalProperties", {})
            schema["patternProperties"] = {NAME_PATTERN % field.max_key_length: values}
            schema["additionalProperties"] = False
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
