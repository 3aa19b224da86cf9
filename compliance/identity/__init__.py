"""Sign-in glue between django-allauth and the portal (docs/sso.md).

- ``adapters``: closed self-sign-up, just-in-time accounts from the identity provider, refusals
  (the IdP said no, an inactive account) recorded as sign-in failures;
- ``groups``: the IdP's groups claim mapped to portal roles by configuration;
- ``evidence``: how and when the person behind a request last authenticated (the step-up rule and
  each approval's evidence);
- ``mfa``: the requirement that administrators and approvers enrol a second factor;
- ``signals``: the receivers that apply the mapping at every single sign-on.
"""
