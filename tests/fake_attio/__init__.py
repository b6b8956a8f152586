"""A stateful fake of Attio (OAuth server and REST API) for the test suite.

Use it in-process with ``httpx.Client(transport=fake.transport())`` (or
``fake.async_transport()`` for AsyncClient), or over loopback with
``with fake.serve() as base_url:``. Besides OAuth it serves Attio's REST API v2
(objects, attributes, records, lists and entries, notes, tasks, workspace members,
threads and comments, meetings and call recordings, and schema changes) from
per-workspace seeded data: see ``rest.py``, ``meetings.py`` and ``schema_writes.py`` for
the endpoints and ``seed.py`` for the data. From a shell::

    python -m tests.fake_attio --port 8765
"""

from .core import (
    CHAOS_KINDS,
    DEFAULT_SCOPES,
    AuthCode,
    Call,
    ChaosEvent,
    FakeAttio,
    RequestContext,
    SpecViolation,
    TokenRecord,
    Workspace,
    attio_error,
    oauth_error,
)
from .model import Store, seed_id

__all__ = [
    "CHAOS_KINDS",
    "DEFAULT_SCOPES",
    "AuthCode",
    "Call",
    "ChaosEvent",
    "FakeAttio",
    "RequestContext",
    "SpecViolation",
    "Store",
    "TokenRecord",
    "Workspace",
    "attio_error",
    "oauth_error",
    "seed_id",
]
