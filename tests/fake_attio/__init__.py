"""A stateful fake of Attio (OAuth server and REST API) for the test suite.

Use it in-process with ``httpx.Client(transport=fake.transport())`` (or
``fake.async_transport()`` for AsyncClient), or over loopback with
``with fake.serve() as base_url:``. From a shell::

    python -m tests.fake_attio --port 8765
"""

from .core import (
    DEFAULT_SCOPES,
    AuthCode,
    Call,
    FakeAttio,
    RequestContext,
    SpecViolation,
    TokenRecord,
    Workspace,
    attio_error,
    oauth_error,
)

__all__ = [
    "DEFAULT_SCOPES",
    "AuthCode",
    "Call",
    "FakeAttio",
    "RequestContext",
    "SpecViolation",
    "TokenRecord",
    "Workspace",
    "attio_error",
    "oauth_error",
]
