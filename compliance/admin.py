"""The admin site of the portal: each capability package registers its own models."""

from django.contrib import admin

from .audit import admin as audit_admin
from .identity import admin as identity_admin
from .monitoring import admin as monitoring_admin
from .people import admin as people_admin
from .reports import admin as reports_admin
from .training import admin as training_admin
from .violations import admin as violations_admin

__all__ = [
    "audit_admin",
    "identity_admin",
    "monitoring_admin",
    "people_admin",
    "reports_admin",
    "training_admin",
    "violations_admin",
]

admin.site.site_header = "Deployment authorization portal"
admin.site.site_title = "Deployment authorization"
admin.site.index_title = "Administration"
