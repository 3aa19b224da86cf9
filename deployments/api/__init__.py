"""The REST API (``/api/v1/``): configuration as small viewsets, workflow actions as explicit endpoints."""
