"""The fake's schema writes (objects, attributes, select options, statuses and lists
created and updated) and the value-history reads of a record or a list entry.

``register(fake)`` adds these routes beside ``rest.py``'s, with the same checks: the
token, the operation's "Required scopes" (creating an attribute states its scope per
target, in prose, so that one is checked here) and Attio's error body, its code fitted
to what the document declares. Unique slugs (and option or status titles) conflict
with a 409 where the operation declares one, and a 400 where it does not.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from .model import AttributeDef, ListDef, ObjectDef, Option, Status, Store, _HasAttributes
from .rest import Problem, Req, RestApi, _path_regex, not_found
from .values import attribute_values

if TYPE_CHECKING:
    from .core import FakeAttio

_TABLE = """
POST    /v2/objects                                                         objects.create
PATCH   /v2/objects/{object}                                                objects.update
POST    /v2/{target}/{identifier}/attributes                                attributes.create
PATCH   /v2/{target}/{identifier}/attributes/{attribute}                    attributes.update
POST    /v2/{target}/{identifier}/attributes/{attribute}/options            options.create
PATCH   /v2/{target}/{identifier}/attributes/{attribute}/options/{option}   options.update
POST    /v2/{target}/{identifier}/attributes/{attribute}/statuses           statuses.create
PATCH   /v2/{target}/{identifier}/attributes/{attribute}/statuses/{status}  statuses.update
POST    /v2/lists                                                           lists.create
PATCH   /v2/lists/{list}                                                    lists.update
GET     /v2/objects/{object}/records/{record_id}/attributes/{attribute}/values   records.values
GET     /v2/lists/{list}/entries/{entry_id}/attributes/{attribute}/values  entries.values
"""
ROUTES: tuple[tuple[str, str, str], ...] = tuple(
    (method, template, endpoint)
    for method, template, endpoint in (line.split() for line in _TABLE.strip().splitlines())
)

# Attio asks for snake case; the fake also takes "-", as Attio's own examples do.
SLUG = re.compile(r"[a-z][a-z0-9_-]*")
# Attribute types that may hold several values.
MULTISELECT_TYPES = {
    "select",
    "record-reference",
    "actor-reference",
    "email-address",
    "domain",
    "phone-number",
    "location",
}
ACCESS_LEVELS = ("full-access", "read-and-write", "read-only")


def register(fake: FakeAttio) -> None:
    """Add the schema-write and value-history routes to ``fake``'s routing table."""
    api = SchemaWrites(fake)
    for method, template, endpoint in ROUTES:
        handler = api.route(method, template, getattr(api, endpoint.replace(".", "_")))
        fake.add_route(method, _path_regex(template), endpoint, handler)


def _new_id() -> str:
    return str(uuid.uuid4())


def _ok(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data})


def _slug(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise Problem(
            f"The {what} api_slug {value!r} must be snake case: lower-case letters, digits "
            "and underscores, starting with a letter."
        )
    return value


def _conflict(message: str, *, declared: bool) -> Problem:
    # Operations that declare no 409 answer a taken slug with their 400.
    if declared:
        return Problem(message, code="slug_conflict", status=409)
    return Problem(message)


def _rekey(items: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``items`` with the key ``old`` renamed ``new``, in the same order."""
    return {new if key == old else key: value for key, value in items.items()}


class SchemaWrites(RestApi):
    """The handlers; the look-ups and JSON shapes are ``RestApi``'s."""

    # --- objects ---------------------------------------------------------------------

    def objects_create(self, req: Req) -> httpx.Response:
        data, store = req.data, req.store
        slug = _slug(data.get("api_slug"), "object")
        if store.object(slug) is not None:
            raise _conflict(f'An object with slug "{slug}" already exists.', declared=True)
        obj = ObjectDef(
            id=_new_id(),
            api_slug=slug,
            created_at=req.now,
            attributes={},
            singular_noun=data["singular_noun"],
            plural_noun=data["plural_noun"],
        )
        store.objects[slug] = obj
        return _ok(self.object_json(store, obj))

    def objects_update(self, req: Req) -> httpx.Response:
        data, store = req.data, req.store
        obj = self._object(req, req.path["object"])
        if "api_slug" in data and data["api_slug"] != obj.api_slug:
            slug = _slug(data["api_slug"], "object")
            if store.object(slug) is not None:
                raise _conflict(f'An object with slug "{slug}" already exists.', declared=True)
            _rename_object(store, obj.api_slug, slug)
            obj.api_slug = slug
        for name in ("singular_noun", "plural_noun"):
            if name in data:
                setattr(obj, name, data[name])
        return _ok(self.object_json(store, obj))

    # --- attributes ------------------------------------------------------------------

    def attributes_create(self, req: Req) -> httpx.Response:
        target = req.path["target"]
        req.require(
            "object_configuration:read-write"
            if target == "objects"
            else "list_configuration:read-write"
        )
        parent = self._parent(req)
        data = req.data
        slug = _slug(data["api_slug"], "attribute")
        if parent.attribute(slug) is not None:
            raise _conflict(
                f'An attribute with slug "{slug}" already exists on "{parent.api_slug}".',
                declared=True,
            )
        kind = data["type"]
        if kind == "status" and target == "objects":
            raise Problem('Attributes of type "status" are not supported on objects.')
        if data["is_multiselect"] and kind not in MULTISELECT_TYPES:
            raise Problem(f'Attributes of type "{kind}" cannot be multiselect.')
        attr = AttributeDef(
            id=_new_id(),
            parent_id=parent.id,
            api_slug=slug,
            title=data["title"],
            type=kind,
            created_at=req.now,
            description=data["description"],
            is_required=data["is_required"],
            is_unique=data["is_unique"],
            is_multiselect=data["is_multiselect"],
        )
        self._configure(req.store, attr, data["config"])
        parent.attributes[slug] = attr
        return _ok(self.attribute_json(req.store, parent, attr))

    def attributes_update(self, req: Req) -> httpx.Response:
        parent, attr = self._attribute(req)
        data = req.data
        if attr.is_system_attribute and set(data) - {"title", "description"}:
            raise Problem(
                f'Only the title and description of the system attribute "{attr.api_slug}" '
                "can be changed.",
                code="system_edit_unauthorized",
            )
        if "config" in data:
            self._configure(req.store, attr, data["config"])
        if "api_slug" in data and data["api_slug"] != attr.api_slug:
            slug = _slug(data["api_slug"], "attribute")
            if parent.attribute(slug) is not None:
                raise _conflict(
                    f'An attribute with slug "{slug}" already exists on "{parent.api_slug}".',
                    declared=False,
                )
            _rename_attribute(req.store, parent, attr.api_slug, slug)
            attr.api_slug = slug
        for name in ("title", "description", "is_required", "is_unique", "is_archived"):
            if name in data:
                setattr(attr, name, data[name])
        return _ok(self.attribute_json(req.store, parent, attr))

    def _configure(self, store: Store, attr: AttributeDef, config: dict[str, Any]) -> None:
        """Apply an attribute's ``config``; a part for another type is refused."""
        currency = config.get("currency")
        if currency is not None:
            if attr.type != "currency":
                raise Problem(f'Only currency attributes take "currency" config, not {attr.type}.')
            attr.default_currency_code = currency["default_currency_code"]
        elif attr.type == "currency" and attr.default_currency_code is None:
            attr.default_currency_code = "USD"
        reference = config.get("record_reference")
        if reference is not None:
            if attr.type != "record-reference":
                raise Problem(
                    f'Only record-reference attributes take "record_reference" config, '
                    f"not {attr.type}."
                )
            allowed = []
            for key in reference["allowed_objects"]:
                obj = store.object(key)
                if obj is None:
                    raise not_found("Object with slug/ID", key)
                allowed.append(obj.api_slug)
            attr.allowed_objects = tuple(allowed)

    # --- select options and statuses ---------------------------------------------------

    def _typed_attribute(self, req: Req, kind: str) -> tuple[_HasAttributes, AttributeDef]:
        parent, attr = self._attribute(req)
        if attr.type != kind:
            noun = "Select" if kind == "select" else "Status"
            raise not_found(f"{noun} attribute with slug/ID", req.path["attribute"])
        return parent, attr

    def _title(self, items: list[Any], title: str, noun: str, but: Any = None) -> str:
        for item in items:
            if item is not but and item.title.casefold() == title.casefold():
                raise _conflict(f'A {noun} titled "{item.title}" already exists.', declared=True)
        return title

    def option_json(self, store: Store, parent: _HasAttributes, attr, option: Option) -> dict:
        return {
            "id": self._option_id(store, parent, attr, option_id=option.id),
            "title": option.title,
            "is_archived": option.is_archived,
        }

    def status_json(self, store: Store, parent: _HasAttributes, attr, status: Status) -> dict:
        return {
            "id": self._option_id(store, parent, attr, status_id=status.id),
            "title": status.title,
            "is_archived": status.is_archived,
            "celebration_enabled": status.celebration_enabled,
            "target_time_in_status": status.target_time_in_status,
        }

    def options_create(self, req: Req) -> httpx.Response:
        parent, attr = self._typed_attribute(req, "select")
        title = self._title(attr.options, req.data["title"], "select option")
        option = Option(_new_id(), title)
        attr.options.append(option)
        return _ok(self.option_json(req.store, parent, attr, option))

    def options_update(self, req: Req) -> httpx.Response:
        parent, attr = self._typed_attribute(req, "select")
        option = attr.option(req.path["option"])
        if option is None:
            raise not_found("Select option with title/ID", req.path["option"])
        data = req.data
        if "title" in data:
            option.title = self._title(attr.options, data["title"], "select option", option)
        if "is_archived" in data:
            option.is_archived = data["is_archived"]
        return _ok(self.option_json(req.store, parent, attr, option))

    def statuses_create(self, req: Req) -> httpx.Response:
        parent, attr = self._typed_attribute(req, "status")
        data = req.data
        status = Status(
            _new_id(),
            self._title(attr.statuses, data["title"], "status"),
            celebration_enabled=data.get("celebration_enabled", False),
            target_time_in_status=data.get("target_time_in_status"),
        )
        attr.statuses.append(status)
        return _ok(self.status_json(req.store, parent, attr, status))

    def statuses_update(self, req: Req) -> httpx.Response:
        parent, attr = self._typed_attribute(req, "status")
        status = attr.status(req.path["status"])
        if status is None:
            raise not_found("Status with title/ID", req.path["status"])
        data = req.data
        if "title" in data:
            status.title = self._title(attr.statuses, data["title"], "status", status)
        for name in ("is_archived", "celebration_enabled", "target_time_in_status"):
            if name in data:
                setattr(status, name, data[name])
        return _ok(self.status_json(req.store, parent, attr, status))

    # --- lists -------------------------------------------------------------------------

    def _access(
        self, req: Req, workspace_access: str | None, members: list[dict[str, str]]
    ) -> list[tuple[str, str]]:
        access = []
        for item in members:
            member = req.store.members.get(item["workspace_member_id"])
            if member is None:
                raise Problem(
                    f'Cannot find workspace member "{item["workspace_member_id"]}".',
                    code="value_not_found",
                )
            access.append((member.id, item["level"]))
        if workspace_access != "full-access" and all(level != "full-access" for _, level in access):
            raise Problem(
                'A list needs workspace_access "full-access" or a workspace member with '
                '"full-access".',
                code="value_not_found",
            )
        return access

    def lists_create(self, req: Req) -> httpx.Response:
        data, store = req.data, req.store
        slug = _slug(data["api_slug"], "list")
        if store.list(slug) is not None:
            raise _conflict(f'A list with slug "{slug}" already exists.', declared=True)
        parent = self._object(req, data["parent_object"])
        lst = ListDef(
            id=_new_id(),
            api_slug=slug,
            created_at=req.now,
            attributes={},
            name=data["name"],
            parent_object=[parent.api_slug],
            created_by_actor=req.actor,
            workspace_access=data["workspace_access"],
            member_access=self._access(
                req, data["workspace_access"], data["workspace_member_access"]
            ),
        )
        store.lists[slug] = lst
        return _ok(self.list_json(store, lst))

    def lists_update(self, req: Req) -> httpx.Response:
        data, store = req.data, req.store
        lst = self._list(req, req.path["list"])
        if "parent_object" in data:
            raise Problem(
                "The parent object of a list cannot be changed through the API.",
                code="value_not_found",
            )
        workspace_access = data.get("workspace_access", lst.workspace_access)
        if "workspace_member_access" in data:
            access = self._access(req, workspace_access, data["workspace_member_access"])
        else:
            access = self._access(
                req,
                workspace_access,
                [{"workspace_member_id": m, "level": level} for m, level in lst.member_access],
            )
        if "api_slug" in data and data["api_slug"] != lst.api_slug:
            slug = _slug(data["api_slug"], "list")
            if store.list(slug) is not None:
                raise _conflict(f'A list with slug "{slug}" already exists.', declared=False)
            _rename_list(store, lst.api_slug, slug)
            lst.api_slug = slug
        if "name" in data:
            lst.name = data["name"]
        lst.workspace_access, lst.member_access = workspace_access, access
        return _ok(self.list_json(store, lst))

    # --- value history -----------------------------------------------------------------

    def _values_page(
        self, req: Req, values: dict, parent: _HasAttributes, attr: AttributeDef
    ) -> httpx.Response:
        items = attribute_values(
            values,
            parent,
            attr,
            req.store.workspace_id,
            historic=req.query.get("show_historic") == "true",
        )
        offset = req.int_param("offset", 0)
        return _ok(items[offset : offset + req.int_param("limit", len(items))])

    def records_values(self, req: Req) -> httpx.Response:
        obj = self._object(req, req.path["object"])
        record = self._record(req, obj, req.path["record_id"])
        attr = obj.attribute(req.path["attribute"])
        if attr is None:
            raise not_found("Attribute with slug/ID", req.path["attribute"])
        return self._values_page(req, record.values, obj, attr)

    def entries_values(self, req: Req) -> httpx.Response:
        lst = self._list(req, req.path["list"])
        entry = self._entry(req, lst, req.path["entry_id"])
        attr = lst.attribute(req.path["attribute"])
        if attr is None:
            raise not_found("Attribute with slug/ID", req.path["attribute"])
        return self._values_page(req, entry.values, lst, attr)


# --- renaming: everything that names an object, a list or an attribute by its slug ------


def _rename_object(store: Store, old: str, new: str) -> None:
    store.objects = _rekey(store.objects, old, new)
    for record in store.records.values():
        if record.object_slug == old:
            record.object_slug = new
    for entry in store.entries.values():
        if entry.parent_object == old:
            entry.parent_object = new
    for lst in store.lists.values():
        lst.parent_object = [new if slug == old else slug for slug in lst.parent_object]
    for note in store.notes.values():
        if note.parent_object == old:
            note.parent_object = new
    for task in store.tasks.values():
        task.linked_records = [(new if s == old else s, r) for s, r in task.linked_records]
    for thread in store.threads.values():
        if thread.object_slug == old:
            thread.object_slug = new
    for parent in [*store.objects.values(), *store.lists.values()]:
        for attr in parent.attributes.values():
            attr.allowed_objects = tuple(new if s == old else s for s in attr.allowed_objects)
    for values in [r.values for r in store.records.values()] + [
        e.values for e in store.entries.values()
    ]:
        for items in [*values.values(), *getattr(values, "replaced", {}).values()]:
            for value in items:
                if value.get("target_object") == old:
                    value["target_object"] = new


def _rename_list(store: Store, old: str, new: str) -> None:
    store.lists = _rekey(store.lists, old, new)
    for entry in store.entries.values():
        if entry.list_slug == old:
            entry.list_slug = new
    for thread in store.threads.values():
        if thread.list_slug == old:
            thread.list_slug = new


def _rename_attribute(store: Store, parent: _HasAttributes, old: str, new: str) -> None:
    parent.attributes = _rekey(parent.attributes, old, new)
    if isinstance(parent, ObjectDef):
        holders = [r.values for r in store.records.values() if r.object_slug == parent.api_slug]
    else:
        holders = [e.values for e in store.entries.values() if e.list_slug == parent.api_slug]
    for values in holders:
        for found in (values, getattr(values, "replaced", {})):
            if old in found:
                found[new] = found.pop(old)
