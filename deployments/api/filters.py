"""The API's filters: strict (a repeated single-value filter, an empty non-text value or a boolean
that is not true/false is a 400) and in UTC (any valid offset; a moment outside the calendar is a 400,
never a database error)."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms as django_forms

from deployments.choices import RequestSource, RequestStatus
from deployments.models import DeploymentRequest, Environment


class StrictFilterSet(django_filters.FilterSet):
    """Filters refuse what they cannot use: a repeated single-value filter, or a boolean that is not true/false."""

    def is_valid(self):
        valid = super().is_valid()
        for name, declared in self.filters.items():
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else []
            if len(values) > 1 and not isinstance(declared, django_filters.MultipleChoiceFilter):
                self.form.add_error(name, "Give one value.")
                valid = False
            elif values and values[0] == "" and not isinstance(declared, django_filters.CharFilter):
                self.form.add_error(name, "Give a value or leave the filter out.")
                valid = False
            elif values and isinstance(declared, django_filters.BooleanFilter) and values[0] not in ("true", "false"):
                self.form.add_error(name, "Use true or false.")
                valid = False
        return valid


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 date-time, any valid offset, compared in UTC; a moment outside the calendar once in
    UTC (year 1 with a positive offset, …) is a 400, never a database error."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise django_forms.ValidationError("This date and time is out of range.", code="out_of_range") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class EnvironmentFilter(StrictFilterSet):
    service = django_filters.CharFilter(field_name="service__name")
    tier = django_filters.ChoiceFilter(choices=Environment._meta.get_field("tier").choices)

    class Meta:
        model = Environment
        fields = ["service", "tier"]


class RequestFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=RequestStatus.choices)
    service = django_filters.CharFilter(field_name="environment__service__name")
    environment = django_filters.CharFilter(field_name="environment__name")
    sha = django_filters.CharFilter()
    ref = django_filters.CharFilter()
    source = django_filters.ChoiceFilter(choices=RequestSource.choices)
    requester = django_filters.CharFilter(field_name="requester__username")
    is_emergency = django_filters.BooleanFilter()
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = DeploymentRequest
        fields = ["status", "service", "environment", "sha", "ref", "source", "requester", "is_emergency"]
