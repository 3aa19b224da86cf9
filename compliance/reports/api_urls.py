"""Included at ``/api/v1/reports/`` under the namespace "reports_api"."""

from django.urls import path

from . import api

app_name = "reports_api"

urlpatterns = [
    path("", api.ReportListApi.as_view(), name="list"),
    path("<slug:slug>/", api.ReportExportApi.as_view(), name="detail"),
]
