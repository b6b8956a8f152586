"""A real OpenID Connect provider for the sign-in tests: django-oauth-toolkit's own, in a
Django project of its own, run as a separate process on a loopback port
(`python -m tests.oidc_provider`). The portal meets it as it would meet Okta or Keycloak:
discovery, a sign-in page, consent skipped, signed ID tokens and a JWKS."""
