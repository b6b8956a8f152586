"""Check requests and responses against Attio's published OpenAPI document.

The document is the copy bundled in ``connections/openapi/`` (see its SOURCE.md), read
through ``connections.openapi``; ``ATTIO_OPENAPI_PATH`` overrides the location.

Only ``api.attio.com/v2/...`` is described by the document; the OAuth endpoints on
``app.attio.com`` are not, so nothing here knows about them.

Schemas are OpenAPI 3.1, i.e. JSON Schema draft 2020-12. ``$ref``s point into
``#/components/schemas``, so every schema is validated through a ``$ref`` into the
whole document, registered once with ``referencing``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jsonschema
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from connections.openapi import load_attio_spec

__all__ = [
    "Operation",
    "SpecViolationError",
    "find_operation",
    "load_spec",
    "validate_request",
    "validate_response",
]

# The URI under which the whole document is registered; $refs resolve against it.
_SPEC_URI = "urn:attio:openapi"

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Statuses Attio can return from any operation although the document does not
# declare them there: auth failures, rate limits and outages (declared nowhere),
# and 400/404, which most operations declare but some that take ids or input do
# not (e.g. GET /v2/{target}/{identifier}/attributes has no 404, POST
# /v2/lists/{list}/entries/query no 400). Where an operation does not declare
# one, it is checked against the generic error body that the rate-limit guide
# and every declared error share; where it does, the declared schema applies.
_UNDECLARED_ERROR_STATUSES = frozenset({400, 401, 403, 404, 429, 500, 502, 503, 504})


class SpecViolationError(AssertionError):
    """A request or response does not match Attio's OpenAPI document."""


@dataclass(frozen=True)
class Operation:
    """One documented operation, matched against a concrete request path."""

    method: str
    template: str
    path_params: dict[str, str]
    definition: dict[str, Any]

    @property
    def pointer(self) -> str:
        """JSON pointer to the operation object inside the document."""
        return f"/paths/{_escape(self.template)}/{self.method.lower()}"


@dataclass(frozen=True)
class _Template:
    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    literal_segments: int


load_spec = load_attio_spec


@functools.cache
def _registry() -> Registry:
    resource = DRAFT202012.create_resource(load_spec())
    return Registry().with_resource(_SPEC_URI, resource)


def _format_checker() -> jsonschema.FormatChecker:
    # jsonschema's own date-time and uri checks need optional packages that the
    # project does not install, so the formats the document uses are checked here.
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("uuid")
    def is_uuid(value: object) -> bool:
        return not isinstance(value, str) or bool(_UUID.fullmatch(value))

    @checker.checks("date-time")
    def is_date_time(value: object) -> bool:
        return not isinstance(value, str) or bool(_DATE_TIME.fullmatch(value))

    @checker.checks("date")
    def is_date(value: object) -> bool:
        return not isinstance(value, str) or bool(_DATE.fullmatch(value))

    @checker.checks("email")
    def is_email(value: object) -> bool:
        return not isinstance(value, str) or "@" in value

    @checker.checks("uri")
    def is_uri(value: object) -> bool:
        return not isinstance(value, str) or bool(urlsplit(value).scheme)

    return checker


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@functools.cache
def _validator(pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at ``pointer`` (cached: building one is costly)."""
    schema = {"$ref": f"{_SPEC_URI}#{quote(pointer, safe='/~')}"}
    return jsonschema.Draft202012Validator(
        schema, registry=_registry(), format_checker=_format_checker()
    )


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


@functools.cache
def _templates() -> tuple[_Template, ...]:
    templates = []
    for template in load_spec()["paths"]:
        names: list[str] = []
        parts: list[str] = []
        literals = 0
        for segment in template.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                names.append(segment[1:-1])
                parts.append("([^/]+)")
            else:
                literals += 1
                parts.append(re.escape(segment))
        regex = re.compile("/" + "/".join(parts))
        templates.append(_Template(template, regex, tuple(names), literals))
    # Most literal segments first, so /records/query wins over /records/{record_id}.
    templates.sort(key=lambda t: -t.literal_segments)
    return tuple(templates)


def _path_only(url_path: str) -> str:
    if "://" in url_path or "?" in url_path:
        return urlsplit(url_path).path
    return url_path


def find_operation(method: str, url_path: str) -> Operation:
    """Find the documented operation for a request, or raise SpecViolationError."""
    path = _path_only(url_path)
    method = method.upper()
    matches = []
    for template in _templates():
        found = template.regex.fullmatch(path)
        if found:
            params = {
                name: unquote(value)
                for name, value in zip(template.names, found.groups(), strict=True)
            }
            matches.append((template, params))
    if not matches:
        raise SpecViolationError(f"{method} {path}: no path in Attio's OpenAPI document matches")
    path_items = load_spec()["paths"]
    for template, params in matches:
        definition = path_items[template.template].get(method.lower())
        if definition is not None:
            return Operation(method, template.template, params, definition)
    best = matches[0][0].template
    documented = sorted(m.upper() for m in path_items[best] if m in _METHODS)
    raise SpecViolationError(
        f"{method} {path}: method not documented for {best} (documented: {', '.join(documented)})"
    )


def _coerce_query_value(value: str, schema: Mapping[str, Any]) -> Any:
    """Turn a query-string value into the JSON type its schema expects, if it can."""
    types = schema.get("type", "string")
    if isinstance(types, str):
        types = [types]
    if "integer" in types and re.fullmatch(r"-?\d+", value):
        return int(value)
    if "number" in types and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    return value


def _message(error: ValidationError, where: str) -> str:
    location = where + error.json_path[1:]
    if not error.context:
        message = error.message
        if len(message) > 200:
            message = message[:200] + "..."
        return f"{location}: {message}"
    # anyOf/oneOf: "<whole instance> is not valid under any of the given schemas"
    # hides the useful part, so list what each branch objected to.
    branches: dict[str, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(str(sub.relative_schema_path[0]), []).append(sub)
    parts = []
    for index, subs in sorted(branches.items()):
        details = "; ".join(_message(sub, where) for sub in subs[:3])
        more = f" (+{len(subs) - 3} more)" if len(subs) > 3 else ""
        parts.append(f"[{index}] {details}{more}")
    message = f"{location}: matches no {error.validator} branch: " + " | ".join(parts)
    return message if len(message) <= 1000 else message[:1000] + "..."


def _describe(errors: Iterable[ValidationError], where: str) -> list[str]:
    ordered = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    return [_message(error, where) for error in ordered]


def _parameters(operation: Operation) -> list[tuple[str, dict[str, Any]]]:
    """(JSON pointer, parameter) pairs, path-item level first as OpenAPI says."""
    path_item = load_spec()["paths"][operation.template]
    base = f"/paths/{_escape(operation.template)}"
    found = [(f"{base}/parameters/{i}", p) for i, p in enumerate(path_item.get("parameters", []))]
    found += [
        (f"{operation.pointer}/parameters/{i}", p)
        for i, p in enumerate(operation.definition.get("parameters", []))
    ]
    return found


def validate_request(
    method: str,
    url_path: str,
    query: Mapping[str, str] | None = None,
    json_body: Any = None,
) -> Operation:
    """Check a request against the documented operation; return the operation.

    ``json_body`` is the decoded JSON body, or None when the request has none.
    Raises SpecViolationError listing every problem found.
    """
    operation = find_operation(method, url_path)
    query = dict(query or {})
    problems: list[str] = []

    known_query: set[str] = set()
    for pointer, parameter in _parameters(operation):
        name, location = parameter["name"], parameter["in"]
        schema = parameter.get("schema", {})
        if location == "path":
            value: Any = operation.path_params.get(name)
        elif location == "query":
            known_query.add(name)
            if name not in query:
                if parameter.get("required"):
                    problems.append(f"query parameter {name!r} is required")
                continue
            value = _coerce_query_value(query[name], schema)
        else:
            # Header and cookie parameters are not used by Attio's document.
            continue
        validator = _validator(f"{pointer}/schema")
        problems += _describe(validator.iter_errors(value), f"{location}.{name}")

    for name in sorted(set(query) - known_query):
        problems.append(f"query parameter {name!r} is not documented")

    request_body = operation.definition.get("requestBody")
    if request_body is None:
        if json_body is not None:
            problems.append("the operation takes no request body, but one was sent")
    elif json_body is None:
        if request_body.get("required"):
            problems.append("a JSON request body is required")
    else:
        pointer = f"{operation.pointer}/requestBody/content/application~1json/schema"
        problems += _describe(_validator(pointer).iter_errors(json_body), "body")

    if problems:
        raise SpecViolationError(
            f"{operation.method} {_path_only(url_path)} (documented as "
            f"{operation.method} {operation.template}) breaks Attio's OpenAPI "
            "document:\n  - " + "\n  - ".join(problems)
        )
    return operation


def _error_schema(status: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "status_code": {"const": status},
            "type": {"type": "string"},
            "code": {"type": "string"},
            "message": {"type": "string"},
        },
        "required": ["status_code", "type", "code", "message"],
    }


def validate_response(method: str, url_path: str, status: int, json_body: Any) -> None:
    """Check a response body against the schema documented for that status.

    Statuses the document never declares but Attio returns anywhere (401, 403, 429
    and 5xx) are checked against Attio's generic error body instead.
    """
    operation = find_operation(method, url_path)
    responses = operation.definition.get("responses", {})
    key = str(status) if str(status) in responses else "default"
    where = f"{operation.method} {operation.template} -> {status}"
    if key in responses:
        content = responses[key].get("content", {})
        if "application/json" not in content:
            if json_body is not None:
                raise SpecViolationError(f"{where}: documented with no JSON body")
            return
        pointer = f"{operation.pointer}/responses/{key}/content/application~1json/schema"
        errors = list(_validator(pointer).iter_errors(json_body))
    elif status in _UNDECLARED_ERROR_STATUSES:
        validator = jsonschema.Draft202012Validator(_error_schema(status))
        errors = list(validator.iter_errors(json_body))
    else:
        documented = ", ".join(sorted(responses))
        raise SpecViolationError(f"{where}: status not documented (documented: {documented})")
    if errors:
        raise SpecViolationError(
            f"{where}: response body breaks Attio's OpenAPI document:\n  - "
            + "\n  - ".join(_describe(errors, "body"))
        )
