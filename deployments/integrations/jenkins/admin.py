"""Admin pages of the Jenkins integration: the jobs allowed per environment (administrators edit
them), and the builds linked to requests (read-only evidence)."""

from __future__ import annotations

from django.contrib import admin

from compliance.audit.admin_base import ReadOnlyAdmin

from .models import JenkinsBuild, JenkinsJob


@admin.register(JenkinsJob)
class JenkinsJobAdmin(admin.ModelAdmin):
    list_display = ["job_path", "environment", "deploy_stage", "updated_at"]
    list_filter = ["environment__service"]
    search_fields = ["job_path", "environment__name", "environment__service__name"]
    list_select_related = ["environment__service"]


@admin.register(JenkinsBuild)
class JenkinsBuildAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "job_path",
        "build_number",
        "input_id",
        "request",
        "answer",
        "answered_by",
        "result",
        "settled",
    ]
    list_filter = ["answer", "settled"]
    search_fields = ["job_path", "build_url", "answered_by"]
    list_select_related = ["request__environment__service"]
    date_hierarchy = "created_at"
