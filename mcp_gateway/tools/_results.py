"""Shaping Attio's answers for the client: values without their history, ids, names, and
the paged result every listing tool returns."""

from typing import ClassVar, Self

from pydantic import BaseModel, Field, create_model

# Per-value bookkeeping Attio sends with every value; the model rarely needs it.
VALUE_HISTORY_KEYS = {"active_from", "active_until", "created_by_actor"}


def compact_value(value: dict) -> dict:
    out = {k: v for k, v in value.items() if k not in VALUE_HISTORY_KEYS}
    # Select options and statuses are written by title, so show them by title.
    for name in ("option", "status"):
        if isinstance(out.get(name), dict):
            out[name] = out[name].get("title")
    return out


def compact_values(values: dict | None) -> dict[str, list[dict]]:
    """Values keyed by slug, without empty attributes or per-value history."""
    return {
        slug: [compact_value(v) for v in items if isinstance(v, dict)]
        for slug, items in (values or {}).items()
        if items
    }


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
