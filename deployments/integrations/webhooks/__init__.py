"""The one webhook-intake mechanism the CI integrations share: what a received call is stored as, how
a refused call is logged, how the HTTP side reads and stores, and how a stored delivery is processed.

An integration brings only what is its own: how a call is authenticated (GitHub's HMAC signature,
GitLab's token), which headers name the delivery, what the payload summary holds, and the handlers
per event. Everything else — a bounded body, the rate-limited rejection log, redeliveries
acknowledged once, processing claimed through ``portal.outbox``, failures kept retryable, an
administrator's re-processing — behaves the same for every integration.
"""
