"""The operations in Attio's OpenAPI document as a catalogue: found by words, described
briefly, and a request checked against one (and its concrete path built) before it is sent.

Built once per process from `load_attio_spec()`. The document is OpenAPI 3.1, so its
schemas are JSON Schema draft 2020-12; requests are checked with `jsonschema`, its `$ref`s
resolved through a `referencing` registry holding the whole document.
"""

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from . import load_attio_spec

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# POSTs that only read: their body is a query, not something to create.
READ_POSTS = frozenset(
    {
        "POST /v2/objects/{object}/records/query",
        "POST /v2/lists/{list}/entries/query",
        "POST /v2/objects/records/search",
    }
)

# Path arguments: letters, digits, '-', '_' and '.', and never "." or ".." alone, which
# would climb the path once the URL is normalised.
PATH_PART = re.compile(r"[A-Za-z0-9_.-]{1,128}")

# Bounds on `describe`: a request body schema longer than this (as JSON) is shown less
# deeply, with a note where it was cut.
BODY_SCHEMA_CHARS = 4000
ENUM_SHOWN = 12
DESCRIPTION_SENTENCES = 2
PARAMETER_DESCRIPTION_CHARS = 120
MAX_PROBLEMS = 10

# The URI the whole document is registered under; $refs resolve against it.
SPEC_URI = "urn:attio:openapi"


class RequestProblem(ValueError):
    """A request the portal will not send: what is wrong, and a code for the audit row."""

    def __init__(self, problems: list[str], code: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.code = code


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path" or "query": the document uses no header or cookie parameters
    required: bool
    schema: dict[str, Any]
    description: str
    pointer: str  # of its schema, in the document


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    summary: str
    description: str
    tags: tuple[str, ...]
    scopes: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    body_schema: dict[str, Any] | None  # with its $refs resolved
    body_required: bool
    pointer: str  # of the operation, in the document

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def is_read(self) -> bool:
        return self.method == "GET" or self.name in READ_POSTS

    @property
    def is_webhook(self) -> bool:
        # A webhook would send the workspace's data to an address of the caller's choosing.
        return self.template == "/v2/webhooks" or self.template.startswith("/v2/webhooks/")

    def path_parameters(self) -> list[Parameter]:
        return [p for p in self.parameters if p.location == "path"]

    def query_parameters(self) -> list[Parameter]:
        return [p for p in self.parameters if p.location == "query"]


@dataclass(frozen=True)
class Request:
    """A request that fits its operation: the concrete path, and what to send."""

    operation: Operation
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None


def has_scope(granted: Iterable[str], needed: str) -> bool:
    """`x:read-write` satisfies `x:read`."""
    granted = set(granted)
    name, _, level = needed.partition(":")
    return needed in granted or (level == "read" and f"{name}:read-write" in granted)


def missing_scopes(operation: Operation, granted: Iterable[str]) -> list[str]:
    granted = list(granted)
    return [scope for scope in operation.scopes if not has_scope(granted, scope)]


# --- Building the catalogue -------------------------------------------------------------------


def escape(segment: str) -> str:
    """A JSON pointer segment (RFC 6901)."""
    return segment.replace("~", "~0").replace("/", "~1")


def resolve(schema: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """`schema` with each `$ref` into #/components/schemas replaced by what it points to."""
    if isinstance(schema, list):
        return [resolve(item, components, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name in seen:  # a recursive schema: leave the reference
            return schema
        return resolve(components[name], components, (*seen, name))
    return {key: resolve(value, components, seen) for key, value in schema.items()}


# Operations whose `security` in the document lists no scope, though Attio needs one (its
# description says so in prose): as the document's other attribute writes, for objects and
# lists alike.
SCOPES_IN_PROSE = {
    ("POST", "/v2/{target}/{identifier}/attributes"): ("object_configuration:read-write",),
}


def operation_from(template: str, method: str, definition: dict, spec: dict) -> Operation:
    pointer = f"/paths/{escape(template)}/{method}"
    security = definition.get("security", spec.get("security") or [])
    scopes = tuple(scope for requirement in security for scope in requirement.get("oauth2", []))
    scopes = scopes or SCOPES_IN_PROSE.get((method.upper(), template), ())
    parameters = tuple(
        Parameter(
            name=p["name"],
            location=p["in"],
            required=bool(p.get("required")),
            schema=p.get("schema", {}),
            description=p.get("description") or p.get("schema", {}).get("description", ""),
            pointer=f"{pointer}/parameters/{index}/schema",
        )
        for index, p in enumerate(definition.get("parameters", []))
        if p.get("in") in ("path", "query")
    )
    request_body = definition.get("requestBody") or {}
    body_schema = request_body.get("content", {}).get("application/json", {}).get("schema")
    components = spec.get("components", {}).get("schemas", {})
    return Operation(
        method=method.upper(),
        template=template,
        summary=definition.get("summary", ""),
        description=definition.get("description", ""),
        tags=tuple(definition.get("tags", [])),
        scopes=scopes,
        parameters=parameters,
        body_schema=resolve(body_schema, components) if body_schema is not None else None,
        body_required=bool(request_body.get("required")),
        pointer=pointer,
    )


# --- Finding operations by words ----------------------------------------------------------------

# Words the model may use for what the document calls otherwise.
SYNONYMS = {
    "add": "create",
    "new": "create",
    "make": "create",
    "remove": "delete",
    "edit": "update",
    "change": "update",
    "modify": "update",
    "find": "search",
    "fetch": "get",
    "read": "get",
    "show": "get",
    "all": "list",
    "person": "people",
    "user": "member",
    "who": "identify",
    "whoami": "identify",
    "me": "self",
}
# Words too common in the document to tell operations apart.
STOP_WORDS = frozenset({"a", "an", "the", "of", "on", "in", "to", "for", "by", "and", "or", "v2"})

# How much a word found in each part of an operation counts.
WEIGHTS = {"summary": 4.0, "path": 3.0, "method": 2.0, "tags": 2.0, "description": 1.0}


def stem(word: str) -> str:
    """A word's rough stem, so "meetings" finds "meeting" and "history" "historic"."""
    word = SYNONYMS.get(word, word)
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        word = word[:-1]
    return SYNONYMS.get(word, word)[:6]


def words(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_WORDS}


@dataclass(frozen=True)
class Indexed:
    operation: Operation
    fields: dict[str, set[str]]


def index(operation: Operation) -> Indexed:
    literal_path = " ".join(s for s in operation.template.split("/") if not s.startswith("{"))
    return Indexed(
        operation,
        {
            "summary": words(operation.summary),
            "path": words(literal_path.replace("_", " ")),
            "method": words(operation.method),
            "tags": words(" ".join(operation.tags)),
            "description": words(plain(operation.description)),
        },
    )


def score(indexed: Indexed, query: set[str]) -> float:
    total = 0.0
    for word in query:
        total += max(
            (WEIGHTS[name] for name, found in indexed.fields.items() if word in found),
            default=0.0,
        )
    return total


# --- Describing an operation briefly --------------------------------------------------------------

# Schema keywords whose values are one schema, or a list of schemas.
ONE_SCHEMA = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
# Words for people, not for the model's request: left out of `describe`.
PROSE = ("description", "example", "examples", "title", "$comment")


def brief(schema: Any, depth: int) -> Any:
    """`schema` without prose, and summarised below `depth` levels of nesting."""
    if not isinstance(schema, dict):
        return schema
    if depth <= 0:
        summary: dict[str, Any] = {"note": "not shown here; Attio's docs describe it"}
        if "type" in schema:
            summary = {"type": schema["type"], **summary}
        return summary
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in PROSE:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: brief(sub, depth - 1) for name, sub in value.items()}
        elif key in ONE_SCHEMA and isinstance(value, dict):
            out[key] = brief(value, depth - 1)
        elif key in SCHEMA_LISTS and isinstance(value, list):
            out[key] = [brief(sub, depth - 1) for sub in value]
        elif key == "enum" and isinstance(value, list) and len(value) > ENUM_SHOWN:
            # Country codes and the like: a sample says what kind of value is wanted.
            out[key] = value[:ENUM_SHOWN]
            out["note"] = f"one of {len(value)} values; the first {ENUM_SHOWN} are shown"
        else:
            out[key] = value
    return out


def bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without prose, shown as deeply as fits in BODY_SCHEMA_CHARS (as JSON)."""
    for depth in range(12, 0, -1):
        shown = brief(schema, depth)
        if len(json.dumps(shown)) <= BODY_SCHEMA_CHARS:
            return shown
    return {"type": schema.get("type", "object"), "note": "too large to show; see Attio's docs"}


def plain(text: str) -> str:
    """Markdown links as their text, and the "Required scopes" line left out."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"Required scopes:[^\n]*", "", text)
    return " ".join(text.split())


def first_sentences(text: str, count: int) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", plain(text))
    return " ".join(sentences[:count]).strip()


def parameter_type(schema: dict[str, Any]) -> Any:
    if "enum" in schema:
        return {"enum": schema["enum"]}
    kind = schema.get("type", "string")
    return f"{kind} ({schema['format']})" if "format" in schema else kind


# --- Checking a request --------------------------------------------------------------------------

JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def expected_types(types: Any) -> str:
    names = {"object": "an object", "array": "an array", "string": "a string"}
    names |= {"boolean": "a boolean", "integer": "an integer", "number": "a number"}
    names["null"] = "null"
    if isinstance(types, str):
        types = [types]
    return " or ".join(names.get(t, t) for t in types)


def closest(error: ValidationError) -> ValidationError:
    """Of an anyOf/oneOf's branches, what is wrong with the one the value nearly fits: the
    branch with the fewest problems (then the one naming most of the value's properties),
    and its most specific problem."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    keys = set(error.instance) if isinstance(error.instance, dict) else set()

    def fit(index: int) -> tuple[int, int]:
        branch = error.validator_value[index]
        named = set(branch.get("properties", {})) if isinstance(branch, dict) else set()
        return len(branches[index]), -len(keys & named)

    return best_match(branches[min(branches, key=fit)])


def problem_text(error: ValidationError, where: str) -> str:
    """One problem, naming the JSON path and what is expected there."""
    location = where + error.json_path[1:]
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [name for name in expected if isinstance(value, dict) and name not in value]
        return f"{location}: missing required property {', '.join(map(repr, missing))}"
    if kind == "type":
        return f"{location}: expected {expected_types(expected)}, got {json_type(value)}"
    if kind == "enum":
        return f"{location}: expected one of {', '.join(json.dumps(v) for v in expected)}"
    if kind == "const":
        return f"{location}: expected {json.dumps(expected)}"
    if kind == "format":
        return f"{location}: expected a value in {expected} format"
    if kind == "additionalProperties" and expected is False and isinstance(value, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(set(value) - known)
        allowed = ", ".join(sorted(known)) or "none"
        return f"{location}: unknown property {', '.join(map(repr, unknown))} (allowed: {allowed})"
    if kind in ("anyOf", "oneOf") and error.context:
        return f"{problem_text(closest(error), where)} (or another of the {len(expected)} shapes)"
    bounds = {
        "maxLength": "at most {} characters",
        "minLength": "at least {} characters",
        "maximum": "at most {}",
        "minimum": "at least {}",
        "maxItems": "at most {} items",
        "minItems": "at least {} items",
    }
    if kind in bounds:
        return f"{location}: expected {bounds[kind].format(expected)}"
    # jsonschema's own message quotes the value sent; the portal names only the rule.
    return f"{location}: does not fit the document's `{kind}` rule ({str(expected)[:80]})"


def coerce_query_value(value: Any, schema: dict[str, Any]) -> Any:
    """A query value as the JSON type its schema names: "10" for an integer is 10."""
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else types
    if not isinstance(value, str):
        # A number or boolean where the document wants text goes as its text.
        return query_text(value) if types == ["string"] else value
    # Bounded: Python refuses to read integers of more than 4,300 digits, and no Attio
    # parameter wants one of more than 18.
    if "integer" in types and re.fullmatch(r"-?\d{1,18}", value):
        return int(value)
    if "number" in types and re.fullmatch(r"-?\d{1,18}(\.\d{1,18})?", value):
        return float(value)
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    return value


def query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Catalogue:
    """Every operation in the document, by "METHOD /path/template"."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.operations: dict[str, Operation] = {}
        for template, item in spec.get("paths", {}).items():
            for method, definition in item.items():
                if method.upper() in METHODS and isinstance(definition, dict):
                    operation = operation_from(template, method, definition, spec)
                    self.operations[operation.name] = operation
        self.indexed = [index(operation) for operation in self.operations.values()]
        self.registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec))
        # The formats the document gives request values (webhooks' `uri` aside, never sent).
        self.formats = jsonschema.FormatChecker(formats=("uuid", "email"))
        self.validators: dict[str, jsonschema.Draft202012Validator] = {}

    def get(self, method: str, template: str) -> Operation | None:
        return self.operations.get(f"{method.upper()} {template}")

    def search(self, text: str, limit: int = 5, *, among: Iterable[Operation] | None = None):
        """The operations that best match the words of `text`, best first."""
        query = words(text)
        allowed = None if among is None else {operation.name for operation in among}
        scored = [
            (score(indexed, query), position, indexed.operation)
            for position, indexed in enumerate(self.indexed)
            if allowed is None or indexed.operation.name in allowed
        ]
        # Ties keep the document's order, which lists the everyday operations first.
        scored = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))
        return [operation for _, _, operation in scored[:limit]]

    def describe(self, operation: Operation) -> dict[str, Any]:
        """What a model needs to call `operation`, and no more."""
        parameters = []
        for parameter in operation.parameters:
            shown: dict[str, Any] = {
                "name": parameter.name,
                "in": parameter.location,
                "required": parameter.required,
                "type": parameter_type(parameter.schema),
            }
            description = plain(parameter.description)
            if description:
                shown["description"] = description[:PARAMETER_DESCRIPTION_CHARS]
            parameters.append(shown)
        described: dict[str, Any] = {
            "operation": operation.name,
            "summary": operation.summary,
            "description": first_sentences(operation.description, DESCRIPTION_SENTENCES),
            "reads_only": operation.is_read,
            "scopes": list(operation.scopes),
            "parameters": parameters,
        }
        if operation.body_schema is not None:
            described["body"] = bounded(operation.body_schema)
        return described

    def validator(self, pointer: str) -> jsonschema.Draft202012Validator:
        if pointer not in self.validators:
            schema = {"$ref": f"{SPEC_URI}#{quote(pointer, safe='/~')}"}
            self.validators[pointer] = jsonschema.Draft202012Validator(
                schema, registry=self.registry, format_checker=self.formats
            )
        return self.validators[pointer]

    def problems(self, pointer: str, value: Any, where: str) -> list[str]:
        try:
            errors = sorted(
                self.validator(pointer).iter_errors(value), key=lambda e: [str(p) for p in e.path]
            )
        except RecursionError:
            return [f"{where}: nested too deeply"]
        return [problem_text(error, where) for error in errors]

    def validate(
        self,
        method: str,
        template: str,
        path_params: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Request:
        """Check a request against its operation and build its concrete path; raise
        RequestProblem naming every problem (at most MAX_PROBLEMS) when it doesn't fit."""
        operation = self.get(method, template)
        if operation is None:
            raise RequestProblem(
                [f"{method.upper()} {template} is not an operation in Attio's API."],
                "unknown_operation",
            )
        path_params, query = dict(path_params or {}), dict(query or {})
        problems: list[str] = []

        parts: dict[str, str] = {}
        names = re.findall(r"\{(\w+)\}", operation.template)
        schemas = {parameter.name: parameter for parameter in operation.path_parameters()}
        for name in names:
            value, where = path_params.get(name), f"path_params.{name}"
            parameter = schemas.get(name)
            # A parameter with an enum (`target`) is checked against it alone.
            has_enum = parameter is not None and "enum" in parameter.schema
            if value is None:
                problems.append(f"{where}: required (the path is {operation.template})")
                continue
            if not isinstance(value, str):
                problems.append(f"{where}: expected a string, got {json_type(value)}")
                continue
            if not has_enum and (not PATH_PART.fullmatch(value) or value in (".", "..")):
                problems.append(
                    f"{where}: expected a slug or UUID (letters, digits, '-', '_' and '.' only)"
                )
                continue
            found = self.problems(parameter.pointer, value, where) if parameter else []
            problems += found
            if not found:
                parts[name] = value
        for name in sorted(set(path_params) - set(names)):
            problems.append(
                f"path_params.{name}: not a parameter of {operation.template}"
                + (f" (its parameters: {', '.join(names)})" if names else "")
            )

        sent: dict[str, str] = {}
        known = {parameter.name: parameter for parameter in operation.query_parameters()}
        for name in sorted(set(query) - set(known)):
            problems.append(
                f"query.{name}: not a query parameter of {operation.name}"
                + (f" (its query parameters: {', '.join(known)})" if known else " (it has none)")
            )
        for name, parameter in known.items():
            value = query.get(name)
            if value is None:
                if parameter.required:
                    problems.append(f"query.{name}: required")
                continue
            value = coerce_query_value(value, parameter.schema)
            found = self.problems(parameter.pointer, value, f"query.{name}")
            problems += found
            if not found:
                sent[name] = query_text(value)

        if operation.body_schema is None:
            if body is not None:
                problems.append(f"body: {operation.name} takes no body")
        elif body is None:
            if operation.body_required:
                problems.append(f"body: required by {operation.name}")
        else:
            pointer = f"{operation.pointer}/requestBody/content/application~1json/schema"
            problems += self.problems(pointer, body, "body")

        if problems:
            more = len(problems) - MAX_PROBLEMS
            shown = problems[:MAX_PROBLEMS] + ([f"(and {more} more)"] if more > 0 else [])
            raise RequestProblem(shown, "invalid_request")
        # Each part is quoted whole (quote(safe="")): "/", "?", "#" and "%" cannot leave it.
        path = re.sub(r"\{(\w+)\}", lambda m: quote(parts[m.group(1)], safe=""), operation.template)
        return Request(operation, path, sent, body)


@functools.cache
def catalogue() -> Catalogue:
    """The catalogue of the document in use, built once per process."""
    return Catalogue(load_attio_spec())


def get(method: str, template: str) -> Operation | None:
    return catalogue().get(method, template)


def search(text: str, limit: int = 5, *, among: Iterable[Operation] | None = None):
    return catalogue().search(text, limit, among=among)


def describe(operation: Operation) -> dict[str, Any]:
    return catalogue().describe(operation)


def validate(
    method: str,
    template: str,
    path_params: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    body: Any = None,
) -> Request:
    return catalogue().validate(method, template, path_params, query, body)
