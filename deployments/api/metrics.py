"""The metrics API: DORA figures and approval wait times over a period, for the environments the
caller (and their token) may see."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.errors import RuleViolation
from deployments.api import tokens
from deployments.api.serializers import StrictCharField, StrictInput
from deployments.api.views import PortalAPIMixin, token_of
from deployments.gate import permissions as gate
from deployments.metrics.queries import Period, approver_waits, dora_metrics

MAX_DAYS = 366


class MetricsQuery(StrictInput):
    """The query string: ``from``/``to`` (inclusive days, default the last 30), ``service``, ``environment``."""

    def get_fields(self):
        fields = {
            "from": serializers.DateField(required=False),
            "to": serializers.DateField(required=False),
            "service": StrictCharField(max_length=100, required=False, allow_blank=True, default=""),
            "environment": StrictCharField(max_length=100, required=False, allow_blank=True, default=""),
        }
        return fields

    def validate(self, attrs):
        default = Period.last_days(30)
        period = Period(attrs.get("from") or default.date_from, attrs.get("to") or default.date_to)
        if period.date_to < period.date_from:
            raise RuleViolation("invalid_period", "The period must end on or after the day it starts.",
                                status_code=400)
        if period.days > MAX_DAYS:
            raise RuleViolation("period_too_long", f"A period is at most {MAX_DAYS} days.", status_code=400)
        attrs["period"] = period
        return attrs


# Rules relating two parameters, which an OpenAPI schema cannot state: told in each operation's description.
PERIOD_RULES = (f"The period (`from` to `to`, inclusive) ends on or after its first day (else 400 `invalid_period`) "
                f"and spans at most {MAX_DAYS} days (else 400 `period_too_long`).")

PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (UTC), default 30 days ago."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (UTC, inclusive), default today."),
    OpenApiParameter("service", OpenApiTypes.STR, description="Only this service (name)."),
    OpenApiParameter("environment", OpenApiTypes.STR, description="Only environments with this name."),
]


class PeriodSerializer(serializers.Serializer):
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    days = serializers.IntegerField()


class DoraRowSerializer(serializers.Serializer):
    service = serializers.CharField()
    environment = serializers.CharField()
    tier = serializers.CharField()
    deployments = serializers.IntegerField(help_text="Successful deployments finished in the period.")
    failed_deployments = serializers.IntegerField(help_text="Deployments whose execution failed.")
    flagged_deployments = serializers.IntegerField(
        help_text="Successful deployments later flagged as failed changes (an incident traced to them).")
    rolled_back_deployments = serializers.IntegerField(
        help_text="Successful deployments followed by a rollback (a later success went back to an earlier sha).")
    failed_changes = serializers.IntegerField(
        help_text="Deployments that failed, were flagged or were followed by a rollback (each counted once).")
    deployment_frequency_per_day = serializers.FloatField()
    lead_time_p50_hours = serializers.FloatField(allow_null=True, help_text="First commit (or request) to deployed.")
    lead_time_p95_hours = serializers.FloatField(allow_null=True)
    change_failure_rate = serializers.FloatField(allow_null=True, help_text="Failed changes / all deployments (0–1).")
    restores = serializers.IntegerField()
    time_to_restore_p50_hours = serializers.FloatField(
        allow_null=True, help_text="Failed change (failed, flagged or rolled back) to the next good deployment.")
    approved_requests = serializers.IntegerField()
    approval_wait_p50_hours = serializers.FloatField(allow_null=True, help_text="Request to approval (quorum).")
    approval_wait_p95_hours = serializers.FloatField(allow_null=True)


class DoraResponseSerializer(serializers.Serializer):
    period = PeriodSerializer()
    environments = DoraRowSerializer(many=True)


class ApproverRowSerializer(serializers.Serializer):
    approver = serializers.CharField()
    decisions = serializers.IntegerField()
    wait_p50_hours = serializers.FloatField(allow_null=True)
    wait_p95_hours = serializers.FloatField(allow_null=True)


class EnvironmentWaitSerializer(serializers.Serializer):
    service = serializers.CharField()
    environment = serializers.CharField()
    approved_requests = serializers.IntegerField()
    approval_wait_p50_hours = serializers.FloatField(allow_null=True)
    approval_wait_p95_hours = serializers.FloatField(allow_null=True)


class ApprovalsResponseSerializer(serializers.Serializer):
    period = PeriodSerializer()
    environments = EnvironmentWaitSerializer(many=True)
    approvers = ApproverRowSerializer(many=True)


class _MetricsView(PortalAPIMixin, APIView):
    def _query(self, request) -> dict:
        query = MetricsQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        environment_ids = list(
            tokens.narrow_environments(token_of(request), gate.visible_environments(request.user))
            .values_list("pk", flat=True)
        )
        return {"period": data["period"], "environment_ids": environment_ids, "service": data["service"].strip(),
                "environment": data["environment"].strip()}

    @staticmethod
    def _period(period: Period) -> dict:
        return {"date_from": period.date_from, "date_to": period.date_to, "days": period.days}


class DoraMetricsView(_MetricsView):
    @extend_schema(parameters=PARAMETERS, responses=DoraResponseSerializer, description=PERIOD_RULES,
                   summary="DORA metrics per service and environment over a period")
    def get(self, request):
        q = self._query(request)
        rows = dora_metrics(q["period"], environment_ids=q["environment_ids"], service=q["service"],
                            environment=q["environment"])
        return Response(DoraResponseSerializer({"period": self._period(q["period"]), "environments": rows}).data)


class ApprovalMetricsView(_MetricsView):
    @extend_schema(parameters=PARAMETERS, responses=ApprovalsResponseSerializer, description=PERIOD_RULES,
                   summary="Approval wait times (p50/p95) per environment and per approver")
    def get(self, request):
        q = self._query(request)
        scope = {"environment_ids": q["environment_ids"], "service": q["service"], "environment": q["environment"]}
        rows = [r for r in dora_metrics(q["period"], **scope) if r["approved_requests"]]
        return Response(ApprovalsResponseSerializer({
            "period": self._period(q["period"]), "environments": rows,
            "approvers": approver_waits(q["period"], **scope),
        }).data)
