"""SCIM filter attributes of groups (``filter=displayName eq "Deployment Approvers"``); its own module
because django-scim2's adapters read it while they are imported."""

from django_scim.filters import GroupFilterQuery


class PortalGroupFilterQuery(GroupFilterQuery):
    attr_map = {("displayName", None, None): "name"}
