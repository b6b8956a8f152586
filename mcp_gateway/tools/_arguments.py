"""Tool arguments: the types the tools share, and the portal's wording for a call whose
arguments don't fit a tool's signature."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

# Identifiers go into URL paths: letters, digits, '-' and '_' only, so no argument can
# steer a request anywhere but the Attio endpoint it names.
SLUG_PATTERN = r"^[A-Za-z0-9_-]+$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MEMBER_PATTERN = rf"^[^\s@]+@[^\s@]+$|{UUID_PATTERN}"

Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=SLUG_PATTERN,
        description="An API slug (e.g. `people`) or a UUID",
    ),
]
Uuid = Annotated[str, Field(pattern=UUID_PATTERN, description="A UUID")]
ObjectSlug = Annotated[
    Slug,
    Field(description="Object slug or UUID"),
]
ListSlug = Annotated[Slug, Field(description="List slug or UUID")]
RecordId = Annotated[Uuid, Field(description="Record UUID")]
EntryId = Annotated[Uuid, Field(description="List entry UUID")]
AttributeKey = Annotated[str, Field(min_length=1, max_length=128, pattern=SLUG_PATTERN)]
Values = Annotated[
    dict[AttributeKey, Any],
    Field(
        min_length=1,
        max_length=200,
        description='{attribute slug: value or list}, e.g. {"company": {"target_object": '
        '"companies", "target_record_id": "<id>"}}; null clears',
    ),
]
Filter = Annotated[
    dict[str, Any] | None,
    Field(
        description='e.g. {"name": "Acme"} or {"$and": [{"stage": {"$eq": "Won"}}]}; also '
        "$contains, $gt, $in, $or, $not..."
    ),
]
Offset = Annotated[int, Field(ge=0, le=1_000_000, description="Skip this many")]


class Sort(BaseModel):
    model_config = ConfigDict(extra="forbid")

    direction: Literal["asc", "desc"]
    attribute: AttributeKey | None = Field(None, description="Attribute slug (or give `path`)")
    path: list[Annotated[list[AttributeKey], Field(min_length=2, max_length=2)]] | None = Field(
        None,
        description='Reference path, e.g. [["people", "company"], ["companies", "name"]]',
    )
    field: AttributeKey | None = Field(None, description="Sub-field, e.g. `last_name`")

    @model_validator(mode="after")
    def attribute_or_path(self) -> "Sort":
        if (self.attribute is None) == (self.path is None):
            raise ValueError("give exactly one of `attribute` or `path`")
        return self


Sorts = Annotated[list[Sort] | None, Field(max_length=10, description="Applied in order")]


def attio_sorts(sorts: list[Sort] | None) -> list[dict]:
    return [s.model_dump(exclude_none=True) for s in sorts or []]


def values_for_attio(values: dict[str, Any]) -> dict[str, list]:
    """Attio takes a list of values per attribute: wrap single values, turn null into []."""
    return {
        slug: value if isinstance(value, list) else ([] if value is None else [value])
        for slug, value in values.items()
    }


# --- Arguments that don't fit a tool's signature ---------------------------------------

# The SDK validates a call's arguments against the tool function's signature; its
# ValidationError text (pydantic's wording, input echoes, links to pydantic's docs) is
# rewritten here, a line per argument. Only failed calls get here (server.GatewayServer).

PATTERN_PROBLEMS = {
    SLUG_PATTERN: "must be a slug or a UUID (letters, digits, '-' and '_' only)",
    UUID_PATTERN: "must be a UUID",
    MEMBER_PATTERN: "must be a workspace member's UUID or email address",
}
DATE_TIME_PROBLEM = "must be an ISO 8601 date or date-time, e.g. 2025-06-30T17:00:00Z"
TYPE_PROBLEMS = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "extra_forbidden": "unknown field",
}


def argument_problem(error: ErrorDetails) -> str:
    """What is wrong with one argument, in the portal's words (pydantic's as a last resort)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind in TYPE_PROBLEMS:
        return TYPE_PROBLEMS[kind]
    if kind == "string_pattern_mismatch":
        return PATTERN_PROBLEMS.get(ctx.get("pattern"), "is not in the expected form")
    if kind in ("string_too_short", "too_short"):
        minimum = ctx.get("min_length")
        if minimum == 1:
            return "must not be empty"
        unit = "characters" if kind == "string_too_short" else "items"
        return f"must have at least {minimum} {unit}"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"must have at most {ctx.get('max_length')} {unit}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("more than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, limit = bounds[kind]
        return f"must be {words} {ctx.get(limit)}"
    if kind in ("literal_error", "enum"):
        return f"must be {ctx.get('expected')}"
    if kind.startswith(("datetime_", "date_")):
        return DATE_TIME_PROBLEM
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])  # our own validators' messages (e.g. Sort's)
    return error["msg"]


def argument_path(loc: tuple) -> str:
    """`sorts[0].attribute` for pydantic's ("sorts", 0, "attribute")."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def argument_errors(error: ValidationError) -> str:
    """The message for a call whose arguments don't fit: one line per argument."""
    lines: dict[str, str] = {}
    for detail in error.errors(include_url=False, include_input=False):
        loc, problem = detail["loc"], argument_problem(detail)
        if loc and loc[-1] == "[key]":
            # A dictionary key that is not allowed: ("values", "bad key", "[key]").
            loc, problem = loc[:-2], f"key {loc[-2]!r} {problem}"
        # The first problem of each argument is enough to fix it.
        lines.setdefault(argument_path(loc), problem)
    return "invalid arguments.\n" + "\n".join(
        f"{path}: {problem}" for path, problem in lines.items()
    )
