"""Shaping Attio's answers for the client: values reduced to what they mean, long texts cut,
ids, names, and the paged result every listing tool returns."""

from collections.abc import Collection, Iterable
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, Field, create_model

from ..auth import Caller
from ._arguments import AttributeKey
from ._call import Schema, ToolFailure, attribute_schema

# --- Values, reduced to what they mean ------------------------------------------------------

# Attio sends every value as an object with its history and every derived field (an email
# address comes with its domain, root domain and local part): hundreds of tokens a record
# for a few facts. The tools send each value's meaning; `get_value_history` keeps the rest.
TEXT_LIMIT = 2000
SCALAR_TYPES = {"text", "number", "checkbox", "rating", "date", "timestamp"}
FIELD_OF_TYPE = {
    "email-address": "email_address",
    "domain": "domain",
    "phone-number": "phone_number",
    "personal-name": "full_name",
}
LOCATION_PARTS = (
    "line_1",
    "line_2",
    "line_3",
    "line_4",
    "locality",
    "region",
    "postcode",
    "country_code",
    "latitude",
    "longitude",
)
# Per-value bookkeeping Attio sends with every value.
VALUE_HISTORY_KEYS = {"active_from", "active_until", "created_by_actor"}

AttributeNames = Annotated[
    list[AttributeKey] | None,
    Field(max_length=50, description="Only these attributes"),
]
FullText = Annotated[
    list[AttributeKey] | None,
    Field(max_length=50, description="Text attributes to give uncut"),
]


def cut(text: str, more: str, limit: int = TEXT_LIMIT) -> str:
    """`text`, or its first `limit` characters and a marker saying how to get the rest."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [cut at {limit:,} of {len(text):,} characters: {more} gives all]"


def meaning(value: dict, kind: str, titles: dict[str, str]) -> Any:
    """One Attio value object reduced to what it means, by its attribute type."""
    if kind in SCALAR_TYPES:
        return value.get("value")
    if kind in FIELD_OF_TYPE:
        return value.get(FIELD_OF_TYPE[kind])
    if kind == "currency":
        return {"amount": value.get("currency_value"), "currency": value.get("currency_code")}
    if kind in ("select", "status"):
        choice = value.get("option" if kind == "select" else "status")
        # Select options and statuses are written by title, so they are shown by title.
        # Some answers carry only the id: its title comes from the attribute's options.
        if isinstance(choice, dict):
            return choice.get("title")
        return titles.get(str(choice), choice)
    if kind == "record-reference":
        return {"object": value.get("target_object"), "record_id": value.get("target_record_id")}
    if kind == "actor-reference":
        return {"type": value.get("referenced_actor_type"), "id": value.get("referenced_actor_id")}
    if kind == "interaction":
        return {"type": value.get("interaction_type"), "at": value.get("interacted_at")}
    if kind == "location":
        return {part: value[part] for part in LOCATION_PARTS if value.get(part) is not None}
    # A type Attio added since: its own fields.
    return {k: v for k, v in compact_value(value).items() if k != "attribute_type"}


def compact_value(value: dict) -> dict:
    """A value object's own fields, without its history; select options and statuses by
    title."""
    out = {k: v for k, v in value.items() if k not in VALUE_HISTORY_KEYS}
    for name in ("option", "status"):
        if isinstance(out.get(name), dict):
            out[name] = out[name].get("title")
    return out


def compact_values(
    values: dict | None,
    schema: Schema,
    *,
    only: list[str] | None = None,
    full_text: Collection[str] = (),
    more: str = "",
) -> dict[str, Any]:
    """Values by slug, each reduced to what it means: one value for a single-value
    attribute, a list for a multiselect one (and for every attribute while the schema is
    unknown). Attributes without a value are left out, unless named in `only`. Texts past
    TEXT_LIMIT are cut, except those in `full_text`; `more` says how to get the rest
    (e.g. 'get_record with full_text=["{slug}"]')."""
    values = values or {}
    types = schema.types or {}
    shaped: dict[str, Any] = {}
    for slug in values if only is None else only:
        items = [v for v in values.get(slug) or [] if isinstance(v, dict)]
        if not items and only is None:
            continue
        meanings = []
        for item in items:
            kind = item.get("attribute_type") or types.get(slug, "")
            value = meaning(item, kind, schema.titles.get(slug, {}))
            if kind == "text" and isinstance(value, str) and slug not in full_text:
                value = cut(value, more.format(slug=slug))
            meanings.append(value)
        if slug in types and slug not in schema.multiselect:
            shaped[slug] = meanings[0] if meanings else None
        else:
            shaped[slug] = meanings
    return shaped


def choices_by_id(all_values: Iterable[dict | None]) -> set[str]:
    """The select and status attributes whose values carry an option's or status's id alone."""
    return {
        slug
        for values in all_values
        for slug, items in (values or {}).items()
        for item in items or []
        if isinstance(item, dict)
        and (isinstance(item.get("option"), str) or isinstance(item.get("status"), str))
    }


def refuse_unknown_names(
    names: list[str], schema: Schema, all_values: list[dict | None], target: str, identifier: str
) -> None:
    """A tool error naming the valid slugs when `attributes` or `full_text` names others."""
    # Attio's answers name every attribute, with or without a value, so they stand in for
    # a schema Attio would not give.
    valid = set(schema.slugs) or {slug for values in all_values for slug in values or {}}
    unknown = [name for name in dict.fromkeys(names) if name not in valid]
    if valid and unknown:
        noun = "object" if target == "objects" else "list"
        raise ToolFailure(
            f"Unknown attribute slug(s): {', '.join(unknown)}. The {noun} `{identifier}` has "
            f"these attribute slugs: {', '.join(sorted(valid))}.",
            "unknown_attribute",
        )


async def shaped_values(
    caller: Caller,
    target: str,
    identifier: str,
    all_values: list[dict | None],
    *,
    only: list[str] | None = None,
    full_text: list[str] | None = None,
    more: str,
) -> list[dict[str, Any]]:
    """`compact_values` of each of an object's records (or a list's entries), with the
    object's schema from the cache or from one Attio call."""
    schema = await attribute_schema(
        caller, target, identifier, titles_for=sorted(choices_by_id(all_values))
    )
    refuse_unknown_names(
        [*(only or []), *(full_text or [])], schema, all_values, target, identifier
    )
    only = list(dict.fromkeys(only)) if only is not None else None
    return [
        compact_values(v, schema, only=only, full_text=full_text or (), more=more)
        for v in all_values
    ]


# --- Ids, names and pages -------------------------------------------------------------------


def next_offset(count: int, limit: int, offset: int) -> int | None:
    # Attio returns no total: a full page means there may be more.
    return offset + count if count >= limit else None


def display_name(values: dict) -> str | None:
    for value in values.get("name") or []:
        name = value.get("full_name") or value.get("value")
        if name:
            return str(name)
    return None


def id_part(item: dict, name: str) -> str:
    return str((item.get("id") or {}).get(name) or "")


class Deleted(BaseModel):
    deleted: bool
    kind: str = Field(description="What was deleted: record, note, task or list entry")
    id: str


def deleted(kind: str, id: str) -> Deleted:
    return Deleted(deleted=True, kind=kind, id=id)


class Page(BaseModel):
    """A page of results: `paged` makes one model per kind of item, named and laid out
    as clients have seen it (items first, then offset, limit and next_offset)."""

    items_field: ClassVar[str]

    @classmethod
    def of(cls, items: list, *, offset: int, limit: int) -> Self:
        return cls(
            **{cls.items_field: items},
            offset=offset,
            limit=limit,
            next_offset=next_offset(len(items), limit, offset),
        )


def paged(
    name: str, items_field: str, item: type[BaseModel], *, next_offset_help: str | None = None
) -> type[Page]:
    """The Page model `name`, holding `items_field`: a list of `item`."""
    model = create_model(
        name,
        __base__=Page,
        **{items_field: (list[item], ...)},
        offset=(int, ...),
        limit=(int, ...),
        next_offset=(int | None, Field(description=next_offset_help) if next_offset_help else ...),
    )
    model.items_field = items_field
    return model
