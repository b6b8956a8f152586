"""Download Attio's OpenAPI document afresh, check it, show what changed, keep it.

    python -m connections.openapi.refresh [--url URL] [--output PATH] [--dry-run]

`make attio-spec` runs this. The new document must parse as OpenAPI 3.1 before it
replaces the bundled copy; otherwise nothing is written and the command exits 1.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import httpx
from openapi_spec_validator import OpenAPIV31SpecValidator

from connections.openapi import ATTIO_OPENAPI_URL, BUNDLED_PATH

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class RefreshError(Exception):
    """The download can't replace the bundled document; says why in one line."""


def operations(document: dict) -> set[str]:
    """Every operation the document describes, as "METHOD /path"."""
    return {
        f"{method.upper()} {path}"
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in _METHODS
    }


def download(url: str) -> bytes:
    try:
        response = httpx.get(url, timeout=60, follow_redirects=True)
    except httpx.HTTPError as e:
        raise RefreshError(f"could not download {url}: {e}") from None
    if response.status_code != 200:
        raise RefreshError(f"{url} answered HTTP {response.status_code}")
    return response.content


def check(content: bytes) -> dict:
    """The parsed document, if it is valid OpenAPI 3.1."""
    try:
        document = json.loads(content)
    except ValueError as e:
        raise RefreshError(f"the download is not JSON: {e}") from None
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3.1"):
        raise RefreshError("the download is not an OpenAPI 3.1 document")
    error = next(OpenAPIV31SpecValidator(document).iter_errors(), None)
    if error is not None:
        where = "/".join(str(part) for part in error.path) or "(document)"
        raise RefreshError(f"the download is not valid OpenAPI 3.1: {where}: {error.message}")
    return document


def changes(old: dict, new: dict) -> list[str]:
    """Lines saying which operations were added and removed."""
    before, after = operations(old), operations(new)
    lines = [f"+ {op}" for op in sorted(after - before)]
    lines += [f"- {op}" for op in sorted(before - after)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=ATTIO_OPENAPI_URL)
    parser.add_argument("--output", type=Path, default=BUNDLED_PATH)
    parser.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    args = parser.parse_args(argv)

    try:
        content = download(args.url)
        new = check(content)
    except RefreshError as e:
        print(f"attio-spec: {e}; {args.output} is unchanged.", file=sys.stderr)
        return 1
    old = json.loads(args.output.read_text(encoding="utf-8")) if args.output.is_file() else {}

    info = new.get("info", {})
    ops = operations(new)
    print(
        f"{args.url}: {info.get('title')} {info.get('version')}, OpenAPI {new['openapi']}, "
        f"{len(new.get('paths', {}))} paths, {len(ops)} operations"
    )
    diff = changes(old, new)
    print("\n".join(diff) if diff else "No operation added or removed.")
    if args.dry_run:
        return 0
    temporary = args.output.with_suffix(".download")
    temporary.write_bytes(content)
    temporary.replace(args.output)
    print(f"Wrote {args.output}, sha256 {hashlib.sha256(content).hexdigest()}.")
    print("Record the new sha256 and today's date in SOURCE.md beside it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
