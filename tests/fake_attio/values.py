"""Attio attribute values: input shapes in, stored (output) shapes out, and queries.

Writes take Attio's input shapes (the spec's ``input-value``), e.g.
``"name": ["Ada Lovelace"]`` or ``[{"first_name": "Ada", "last_name": "Lovelace"}]``,
``"domains": ["acme.com"]``, ``"company": [{"target_object": "companies",
"target_record_id": "..."}]``, ``"stage": ["In Progress"]``. The spec requires an
array per attribute; a bare value is accepted too (Attio does), but the strict
spec check rejects it before it gets here.

Filters follow docs.attio.com/rest-api/how-to/filtering-and-sorting as far as a
fake needs: shorthand equality (``{"name": "Acme"}``), operators on the main
value (``{"name": {"$contains": "ac"}}``) or on a property (``{"email_addresses":
{"email_domain": {"$eq": "acme.com"}}}``), and ``$and``/``$or``/``$not``.
Operators: ``$eq $in $contains $starts_with $ends_with $lt $lte $gt $gte
$not_empty``. Path filters and sorts are refused with a filter error.

A write that replaces a value keeps the old one, with its ``active_until`` set, in
the values' ``replaced`` (``StoredValues``), so ``show_historic`` can be answered.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from .model import Actor, AttributeDef, Store, Values, _HasAttributes

WriteMode = Literal["create", "append", "overwrite", "assert"]


class StoredValues(dict):
    """A record's or an entry's current values by slug, plus ``replaced``: the values
    later writes replaced, by slug, each with its ``active_until`` set.

    A dict of the current values, so whatever reads ``record.values`` sees only those;
    ``write_values`` carries ``replaced`` from one write to the next.
    """

    def __init__(self, current: Mapping[str, list] = (), replaced: Values | None = None):
        super().__init__(current)
        self.replaced: Values = replaced if replaced is not None else {}


class ValueProblem(Exception):
    """A write that Attio would refuse: becomes an Attio error response."""

    def __init__(self, message: str, code: str = "validation_type", status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class FilterProblem(ValueProblem):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="filter_error")


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def invalid(attr: AttributeDef, expected: str, got: Any) -> ValueProblem:
    return ValueProblem(
        f'An invalid value was passed to attribute with slug "{attr.api_slug}": '
        f"expected {expected}, got {_show(got)}."
    )


def unknown_attribute(key: str) -> ValueProblem:
    return ValueProblem(f'Cannot find attribute with slug/ID "{key}".', code="value_not_found")


# --- coercing one input value -------------------------------------------------------

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")
_DIAL_CODES = {"US": "1", "CA": "1", "GB": "44", "DE": "49", "FR": "33", "AU": "61"}


def _root_domain(domain: str) -> str:
    return ".".join(domain.split(".")[-2:])


def _unwrap(attr: AttributeDef, item: Any, key: str, expected: str) -> Any:
    """``{"value": x}`` -> ``x``; a bare ``x`` stays ``x``."""
    if isinstance(item, dict):
        if key not in item:
            raise invalid(attr, expected, item)
        return item[key]
    return item


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    value = _unwrap(attr, item, "value", "a string")
    if not isinstance(value, str):
        raise invalid(attr, "a string", item)
    return {"value": value}


def _number(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    value = _unwrap(attr, item, "value", "a number")
    if not _is_number(value):
        raise invalid(attr, "a number", item)
    if attr.type == "rating" and not (0 <= value <= 5 and value == int(value)):
        raise invalid(attr, "a whole number from 0 to 5", item)
    return {"value": value}


def _checkbox(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    value = _unwrap(attr, item, "value", "true or false")
    if not isinstance(value, bool):
        raise invalid(attr, "true or false", item)
    return {"value": value}


def _date(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    value = _unwrap(attr, item, "value", "a date (YYYY-MM-DD)")
    try:
        return {"value": dt.date.fromisoformat(value).isoformat()}
    except (TypeError, ValueError):
        raise invalid(attr, "a date (YYYY-MM-DD)", item) from None


def _currency(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    expected = "a number or {currency_value, currency_code}"
    # The document's enum for currency_code leaves out null, so default to USD.
    code = attr.default_currency_code or "USD"
    if isinstance(item, dict):
        code = item.get("currency_code", code)
    value = _unwrap(attr, item, "currency_value", expected)
    if not _is_number(value) or not (code is None or isinstance(code, str)):
        raise invalid(attr, expected, item)
    return {"currency_value": value, "currency_code": code}


def _personal_name(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    expected = 'a name string or {"first_name", "last_name", "full_name"}'
    if isinstance(item, str):
        first, _, last = item.strip().partition(" ")
        return {"first_name": first, "last_name": last.strip(), "full_name": item}
    if not isinstance(item, dict) or not item:
        raise invalid(attr, expected, item)
    parts = {k: item.get(k) for k in ("first_name", "last_name", "full_name")}
    if set(item) - set(parts) or any(
        v is not None and not isinstance(v, str) for v in parts.values()
    ):
        raise invalid(attr, expected, item)
    first, last, full = (parts[k] or "" for k in parts)
    if not (first or last) and full:
        first, _, last = full.partition(" ")
    return {
        "first_name": first,
        "last_name": last,
        "full_name": full or f"{first} {last}".strip(),
    }


def _email(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    expected = 'an email address or {"email_address": ...}'
    value = _unwrap(attr, item, "email_address", expected)
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        raise invalid(attr, expected, item)
    original = value.strip()
    address = original.lower()
    local, _, domain = address.partition("@")
    return {
        "original_email_address": original,
        "email_address": address,
        "email_domain": domain,
        "email_root_domain": _root_domain(domain),
        "email_local_specifier": local.split("+")[0],
    }


def _domain(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    expected = 'a domain or {"domain": ...}'
    value = _unwrap(attr, item, "domain", expected)
    if not isinstance(value, str):
        raise invalid(attr, expected, item)
    domain = re.sub(r"^[a-z]+://", "", value.strip().lower()).split("/")[0]
    domain = domain.removeprefix("www.")
    if not _DOMAIN.fullmatch(domain):
        raise invalid(attr, expected, item)
    return {"domain": domain, "root_domain": _root_domain(domain)}


def _phone(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    expected = 'a phone number or {"original_phone_number", "country_code"}'
    country = None
    if isinstance(item, dict):
        country = item.get("country_code")
    original = _unwrap(attr, item, "original_phone_number", expected)
    if not isinstance(original, str) or not (country is None or country in _DIAL_CODES):
        raise invalid(attr, expected, item)
    digits = re.sub(r"\D", "", original)
    if len(digits) < 7:
        raise invalid(attr, expected, item)
    if original.strip().startswith("+"):
        number = "+" + digits
        if country is None:
            country = next((c for c, dial in _DIAL_CODES.items() if digits.startswith(dial)), "US")
    else:
        country = country or "US"
        number = "+" + _DIAL_CODES[country] + digits.lstrip("0")
    return {
        "original_phone_number": original,
        "country_code": country,
        "phone_number": number,
    }


def _select(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    value = _unwrap(attr, item, "option", "an option title or id")
    if not isinstance(value, str):
        raise invalid(attr, "an option title or id", item)
    option = attr.option(value)
    if option is None:
        raise ValueProblem(
            f'Cannot find select option with title or ID "{value}" for attribute '
            f'"{attr.api_slug}".',
            code="value_not_found",
        )
    return {"option": option}


def _status(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    value = _unwrap(attr, item, "status", "a status title or id")
    if not isinstance(value, str):
        raise invalid(attr, "a status title or id", item)
    status = attr.status(value)
    if status is None:
        raise ValueProblem(
            f'Cannot find status with title or ID "{value}" for attribute "{attr.api_slug}".',
            code="value_not_found",
        )
    return {"status": status}


def resolve_record(
    store: Store, target_object: str, spec: Mapping[str, Any], *, where: str
) -> tuple[str, str]:
    """Find the record a reference points at: by ``target_record_id`` or by a
    unique attribute (``{"domains": [{"domain": "acme.com"}]}``).

    Returns (object slug, record id); raises value_not_found.
    """
    obj = store.object(target_object)
    if obj is None:
        raise ValueProblem(
            f'Cannot find object with slug/ID "{target_object}" ({where}).',
            code="value_not_found",
        )
    if "target_record_id" in spec:
        record_id = spec["target_record_id"]
        if not isinstance(record_id, str) or store.record(obj.api_slug, record_id) is None:
            raise ValueProblem(
                f'Cannot find record with ID "{record_id}" in object "{obj.api_slug}" ({where}).',
                code="value_not_found",
            )
        return obj.api_slug, record_id
    matchers = {k: v for k, v in spec.items() if k != "target_object"}
    if len(matchers) != 1:
        raise ValueProblem(
            f"A record reference needs target_record_id or one matching attribute ({where}).",
        )
    [(key, wanted)] = matchers.items()
    attr = obj.attribute(key)
    if attr is None:
        raise unknown_attribute(key)
    wanted_keys = {identity(attr, coerce(store, attr, w)) for w in _as_list(wanted)}
    for record in store.records.values():
        if record.object_slug != obj.api_slug:
            continue
        have = {identity(attr, v) for v in record.values.get(attr.api_slug, [])}
        if have & wanted_keys:
            return obj.api_slug, record.id
    raise ValueProblem(
        f'Cannot find a {obj.api_slug} record whose "{attr.api_slug}" matches '
        f"{_show(wanted)} ({where}).",
        code="value_not_found",
    )


def _record_reference(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    expected = '{"target_object", "target_record_id"} or a record id'
    if isinstance(item, str):
        if len(attr.allowed_objects) != 1:
            raise invalid(attr, expected, item)
        item = {"target_object": attr.allowed_objects[0], "target_record_id": item}
    if not isinstance(item, dict) or not isinstance(item.get("target_object"), str):
        raise invalid(attr, expected, item)
    target = store.object(item["target_object"])
    if target is not None and attr.allowed_objects and target.api_slug not in attr.allowed_objects:
        raise invalid(attr, f"a record of {', '.join(attr.allowed_objects)}", item)
    slug, record_id = resolve_record(
        store, item["target_object"], item, where=f'attribute "{attr.api_slug}"'
    )
    return {"target_object": slug, "target_record_id": record_id}


def _actor_reference(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    expected = (
        '{"referenced_actor_type": "workspace-member", "referenced_actor_id"} or '
        '{"workspace_member_email_address"}'
    )
    if isinstance(item, str):
        key = item
    elif isinstance(item, dict) and "workspace_member_email_address" in item:
        key = item["workspace_member_email_address"]
    elif isinstance(item, dict) and item.get("referenced_actor_type") == ("workspace-member"):
        key = item.get("referenced_actor_id")
    else:
        raise invalid(attr, expected, item)
    member = store.member_by_id_or_email(key) if isinstance(key, str) else None
    if member is None:
        raise ValueProblem(
            f'Cannot find workspace member "{key}" (attribute "{attr.api_slug}").',
            code="value_not_found",
        )
    return {
        "referenced_actor_type": "workspace-member",
        "referenced_actor_id": member.id,
    }


_LOCATION_FIELDS = [
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
]


def _location(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - set(_LOCATION_FIELDS):
        raise invalid(attr, "a location object", item)
    return {name: item.get(name) for name in _LOCATION_FIELDS}


_COERCERS: dict[str, Callable[[Store, AttributeDef, Any], dict[str, Any]]] = {
    "text": _text,
    "number": _number,
    "rating": _number,
    "checkbox": _checkbox,
    "date": _date,
    "currency": _currency,
    "personal-name": _personal_name,
    "email-address": _email,
    "domain": _domain,
    "phone-number": _phone,
    "select": _select,
    "status": _status,
    "record-reference": _record_reference,
    "actor-reference": _actor_reference,
    "location": _location,
}


def coerce(store: Store, attr: AttributeDef, item: Any) -> dict[str, Any]:
    """One input value -> its type-specific output fields (no metadata)."""
    coercer = _COERCERS.get(attr.type)
    if coercer is None:
        raise ValueProblem(
            f'Attribute with slug "{attr.api_slug}" (type {attr.type}) cannot be '
            "written through this fake."
        )
    return coercer(store, attr, item)


def identity(attr: AttributeDef, value: Mapping[str, Any]) -> Any:
    """What makes two values of an attribute the same (dedupe, uniqueness)."""
    kind = attr.type
    if kind == "personal-name":
        return value["full_name"]
    if kind == "email-address":
        return value["email_address"]
    if kind == "domain":
        return value["domain"]
    if kind == "phone-number":
        return value["phone_number"]
    if kind == "currency":
        return (value["currency_value"], value.get("currency_code"))
    if kind == "select":
        return value["option"].id
    if kind == "status":
        return value["status"].id
    if kind == "record-reference":
        return (value["target_object"], value["target_record_id"])
    if kind == "actor-reference":
        return (value["referenced_actor_type"], value["referenced_actor_id"])
    if kind == "location":
        return tuple(value.get(name) for name in _LOCATION_FIELDS)
    return value.get("value")


def _as_list(raw: Any) -> list[Any]:
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list) else [raw]


# --- writing a set of values ---------------------------------------------------------


def write_values(
    store: Store,
    parent: _HasAttributes,
    raw: Mapping[str, Any],
    *,
    mode: WriteMode,
    existing: Values | None,
    actor: Actor,
    at: str,
    siblings: Iterable[Values] = (),
    matching_slug: str | None = None,
    system: bool = False,
) -> Values:
    """The values a record or entry has after a write; raises ValueProblem.

    ``mode``: ``create``; ``append`` (PATCH: multiselect values are added);
    ``overwrite`` (PUT: multiselect values are replaced); ``assert`` (like
    overwrite, except ``matching_slug``, which is appended). ``siblings`` are the
    values of the other records or entries, for unique attributes. ``system``
    lets the seed write attributes that are not writable through the API.
    """
    result = StoredValues(
        {slug: list(vals) for slug, vals in (existing or {}).items()},
        {slug: list(vals) for slug, vals in getattr(existing, "replaced", {}).items()},
    )
    for key, raw_value in raw.items():
        attr = parent.attribute(key)
        if attr is None:
            raise unknown_attribute(key)
        if not attr.is_writable and not system:
            raise ValueProblem(
                f'Attribute with slug "{attr.api_slug}" is not writable.',
                code="immutable_value",
            )
        items = _as_list(raw_value)
        if not attr.is_multiselect and len(items) > 1:
            raise ValueProblem(
                f'Attribute with slug "{attr.api_slug}" takes a single value, but '
                f"{len(items)} were passed."
            )
        old = result.get(attr.api_slug, [])
        old_by_key = {identity(attr, v): v for v in old}
        new: list[dict[str, Any]] = []
        seen: set[Any] = set()
        appending = attr.is_multiselect and (
            mode == "append" or (mode == "assert" and attr.api_slug == matching_slug)
        )
        if appending:
            new = list(old)
            seen = set(old_by_key)
        for item in items:
            fields = coerce(store, attr, item)
            key_of = identity(attr, fields)
            if key_of in seen:
                continue
            seen.add(key_of)
            # An unchanged value keeps its history (active_from, created_by_actor).
            new.append(
                old_by_key.get(key_of)
                or {
                    "active_from": at,
                    "active_until": None,
                    "created_by_actor": dict(actor),
                    "attribute_type": attr.type,
                    **fields,
                }
            )
        result[attr.api_slug] = new
        # Unchanged values are the same objects in `new`; the others were replaced.
        kept = {id(v) for v in new}
        replaced = [{**v, "active_until": at} for v in old if id(v) not in kept]
        if replaced:
            result.replaced.setdefault(attr.api_slug, []).extend(replaced)
    for attr in parent.attributes.values():
        if attr.is_required and not result.get(attr.api_slug):
            raise ValueProblem(
                f'Required value for attribute with slug "{attr.api_slug}" was not provided.',
                code="missing_value",
            )
    _check_unique(parent, result, siblings)
    return result


def _check_unique(parent: _HasAttributes, values: Values, siblings: Iterable[Values]) -> None:
    unique = [a for a in parent.attributes.values() if a.is_unique]
    if not unique:
        return
    others = list(siblings)
    for attr in unique:
        mine = {identity(attr, v) for v in values.get(attr.api_slug, [])}
        for other in others:
            clash = mine & {identity(attr, v) for v in other.get(attr.api_slug, [])}
            if clash:
                raise ValueProblem(
                    f"A record with the value {_show(sorted(map(str, clash))[0])} for "
                    f'the unique attribute "{attr.api_slug}" already exists.',
                    code="uniqueness_conflict",
                )


def render(
    values: Values, parent: _HasAttributes, workspace_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Stored values -> the JSON ``values`` / ``entry_values`` object.

    Every attribute of the parent is present (empty list when unset), as Attio
    does. Select options and statuses are expanded into their full objects.
    """
    return {
        attr.api_slug: [
            _rendered(value, parent, attr, workspace_id) for value in values.get(attr.api_slug, [])
        ]
        for attr in parent.attributes.values()
    }


def attribute_values(
    values: Values,
    parent: _HasAttributes,
    attr: AttributeDef,
    workspace_id: str,
    *,
    historic: bool,
) -> list[dict[str, Any]]:
    """One attribute's values, as the values endpoints answer: the current ones, or
    with ``historic`` every value it has had, oldest first (by ``active_from``)."""
    items = list(values.get(attr.api_slug, []))
    if historic:
        replaced = getattr(values, "replaced", {}).get(attr.api_slug, [])
        items = sorted([*replaced, *items], key=lambda v: v["active_from"])
    return [_rendered(value, parent, attr, workspace_id) for value in items]


def _rendered(
    value: Mapping[str, Any], parent: _HasAttributes, attr: AttributeDef, workspace_id: str
) -> dict[str, Any]:
    """A stored value in the JSON shape, its select option or status expanded."""
    value = dict(value)
    if "option" in value:
        option = value["option"]
        value["option"] = {
            "id": _sub_id(workspace_id, parent, attr, "option_id", option.id),
            "title": option.title,
            "is_archived": option.is_archived,
        }
    if "status" in value:
        status = value["status"]
        value["status"] = {
            "id": _sub_id(workspace_id, parent, attr, "status_id", status.id),
            "title": status.title,
            "is_archived": status.is_archived,
            "celebration_enabled": status.celebration_enabled,
            "target_time_in_status": status.target_time_in_status,
        }
    return value


def _sub_id(
    workspace_id: str, parent: _HasAttributes, attr: AttributeDef, name: str, value: str
) -> dict[str, str]:
    # For list attributes Attio's schema still calls the parent "object_id".
    return {
        "workspace_id": workspace_id,
        "object_id": parent.id,
        "attribute_id": attr.id,
        name: value,
    }


# --- filtering and sorting ---------------------------------------------------------

_STRING_OPS = {
    "$contains": lambda have, want: want in have,
    "$starts_with": lambda have, want: have.startswith(want),
    "$ends_with": lambda have, want: have.endswith(want),
}
_ORDER_OPS = {
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
}


def _aliases(attr: AttributeDef | None, value: Mapping[str, Any]) -> list[Any]:
    """The scalars a value is equal to in a filter; the first one sorts."""
    if attr is None:
        return [value["value"]]
    kind = attr.type
    if kind == "personal-name":
        return [value["full_name"]]
    if kind in ("select", "status"):
        item = value["option" if kind == "select" else "status"]
        return [item.title, item.id]
    if kind == "record-reference":
        return [value["target_record_id"]]
    if kind == "actor-reference":
        return [value["referenced_actor_id"]]
    if kind == "currency":
        return [value["currency_value"]]
    if kind == "email-address":
        return [value["email_address"]]
    if kind == "domain":
        return [value["domain"]]
    if kind == "phone-number":
        return [value["phone_number"], value["original_phone_number"]]
    if kind == "location":
        return [value.get("locality")]
    return [value.get("value")]


def _property(attr: AttributeDef | None, value: Mapping[str, Any], name: str) -> Any:
    if attr is not None and attr.type in ("select", "status"):
        item = value["option" if attr.type == "select" else "status"]
        if name in ("option", "status", "title"):
            return [item.title, item.id]
        if name == "id":
            return [item.id]
    if name not in value or name in ("active_until", "created_by_actor"):
        slug = attr.api_slug if attr else "the id"
        raise FilterProblem(f'Unknown property "{name}" for attribute "{slug}".')
    return [value[name]]


def _compare(op: str, candidates: list[list[Any]], want: Any) -> bool:
    if op == "$not_empty":
        if not isinstance(want, bool):
            raise FilterProblem("$not_empty takes true or false.")
        return bool(candidates) == want
    if op == "$eq":
        return any(want in aliases for aliases in candidates)
    if op == "$in":
        if not isinstance(want, list):
            raise FilterProblem("$in takes a list.")
        return any(w in aliases for aliases in candidates for w in want)
    if op in _STRING_OPS:
        if not isinstance(want, str):
            raise FilterProblem(f"{op} takes a string.")
        test = _STRING_OPS[op]
        return any(
            isinstance(a, str) and test(a.casefold(), want.casefold())
            for aliases in candidates
            for a in aliases
        )
    if op in _ORDER_OPS:
        test = _ORDER_OPS[op]
        for aliases in candidates:
            have = aliases[0]
            try:
                if have is not None and test(have, want):
                    return True
            except TypeError:
                raise FilterProblem(f"{op} cannot compare {_show(want)}.") from None
        return False
    raise FilterProblem(f'Unknown filter operator "{op}".')


def _match_condition(attr: AttributeDef | None, values: list[Mapping[str, Any]], cond: Any) -> bool:
    if not isinstance(cond, dict):
        return _compare("$eq", [_aliases(attr, v) for v in values], cond)
    for key, want in cond.items():
        if key.startswith("$"):
            ok = _compare(key, [_aliases(attr, v) for v in values], want)
        else:
            props = [_property(attr, v, key) for v in values]
            if isinstance(want, dict):
                ok = all(_compare(op, props, arg) for op, arg in want.items())
            else:
                ok = _compare("$eq", props, want)
        if not ok:
            return False
    return True


def matches(
    flt: Any,
    values: Values,
    parent: _HasAttributes,
    special: Mapping[str, str] | None = None,
) -> bool:
    """Whether stored ``values`` pass an Attio ``filter``; raises FilterProblem.

    ``special`` maps extra filterable keys (``record_id``, ``entry_id``...) to the
    item's own ids.
    """
    if not isinstance(flt, dict):
        raise FilterProblem("A filter must be an object.")
    for key, cond in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list):
                raise FilterProblem(f"{key} takes a list of filters.")
            results = [matches(f, values, parent, special) for f in cond]
            ok = all(results) if key == "$and" else any(results)
        elif key == "$not":
            ok = not matches(cond, values, parent, special)
        elif key.startswith("$"):
            raise FilterProblem(f'Unknown filter operator "{key}".')
        elif key == "path":
            raise FilterProblem("fake_attio does not support path filters.")
        elif special and key in special:
            ok = _match_condition(None, [{"value": special[key]}], cond)
        else:
            attr = parent.attribute(key)
            if attr is None:
                raise FilterProblem(f'Cannot find attribute with slug/ID "{key}".')
            ok = _match_condition(attr, values.get(attr.api_slug, []), cond)
        if not ok:
            return False
    return True


def _sort_value(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if _is_number(value):
        return (0, value)
    if isinstance(value, str):
        return (1, value.casefold())
    return (2, str(value))


def sort_items(
    items: list[Any],
    sorts: Any,
    parent: _HasAttributes,
    values_of: Callable[[Any], Values],
    special: Callable[[Any], Mapping[str, str]] | None = None,
) -> list[Any]:
    """Sort by Attio ``sorts`` (``{direction, attribute, field?}``); empty last.

    ``special(item)`` gives an item's extra sortable keys (``created_at``...); it
    must return the same keys for every item."""
    special_keys = set(special(items[0])) if special and items else set()
    if not sorts:
        return items
    if not isinstance(sorts, list):
        raise FilterProblem("sorts must be a list.")
    ordered = list(items)
    for sort in reversed(sorts):
        if not isinstance(sort, dict) or "attribute" not in sort:
            raise FilterProblem("fake_attio only supports sorts by attribute.")
        descending = sort.get("direction") == "desc"
        if sort["attribute"] in special_keys:
            name = sort["attribute"]
            ordered.sort(key=lambda i, name=name: special(i)[name], reverse=descending)
            continue
        attr = parent.attribute(sort["attribute"])
        if attr is None:
            raise FilterProblem(f'Cannot find attribute with slug/ID "{sort["attribute"]}".')
        field = sort.get("field")

        def key(item: Any, attr: AttributeDef = attr, field: Any = field) -> Any:
            vals = values_of(item).get(attr.api_slug, [])
            if not vals:
                return None
            first = vals[0]
            raw = _property(attr, first, field)[0] if field else _aliases(attr, first)[0]
            return _sort_value(raw)

        present = [i for i in ordered if key(i) is not None]
        missing = [i for i in ordered if key(i) is None]
        present.sort(key=key, reverse=descending)
        ordered = present + missing
    return ordered
