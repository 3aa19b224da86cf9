"""Auditor reports: a registry any app adds its reports to, exporters, and the read-only pages.

``compliance`` knows nothing about deployments: each app registers its own reports (see
``registry.register`` and docs/reports.md). Importing this package has no side effects.
"""
