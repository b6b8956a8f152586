"""Attio's OpenAPI description of its REST API, kept in the repository (see SOURCE.md).

The fake Attio, the contract tests and the portal itself read it from here; nothing
reads a file outside the repository. ``ATTIO_OPENAPI_PATH`` points elsewhere, for
example at a newer download being tried out.
"""

import functools
import json
import os
from pathlib import Path
from typing import Any

BUNDLED_PATH = Path(__file__).resolve().parent / "attio.json"
# Where Attio publishes the document; docs.attio.com's endpoint pages are built from it.
ATTIO_OPENAPI_URL = "https://api.attio.com/openapi/api"


def spec_path() -> Path:
    """The document in use: ``ATTIO_OPENAPI_PATH`` when set, else the bundled copy."""
    return Path(os.environ.get("ATTIO_OPENAPI_PATH") or BUNDLED_PATH)


@functools.cache
def load_attio_spec() -> dict[str, Any]:
    """The parsed document, read once per process."""
    path = spec_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Attio's OpenAPI document was not found at {path}"
            + (" (ATTIO_OPENAPI_PATH)." if path != BUNDLED_PATH else ".")
        ) from None
    return json.loads(text)
