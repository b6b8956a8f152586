"""The in-memory data of one fake Attio workspace: objects, lists, records and more.

Each workspace the fake knows has its own ``Store``; a token only ever reaches the
store of its own workspace. Everything here is plain data: the REST handlers in
``rest.py`` read and change it under the fake's lock, ``values.py`` turns Attio's
input values into stored values, and ``seed.py`` fills a fresh store.

Record and entry values are stored already in Attio's output shape (a list of
value objects per attribute slug, each with ``active_from``, ``active_until``,
``created_by_actor`` and ``attribute_type``); the values a write replaced are kept
beside them (``values.StoredValues``), for value history.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .meetings import Meeting

Actor = dict[str, Any]  # {"type": "workspace-member" | "api-token" | ..., "id": ...}
Values = dict[str, list[dict[str, Any]]]


def seed_id(workspace_slug: str, *parts: str) -> str:
    """A stable UUID for a seeded thing, e.g. ``seed_id("acme", "object", "people")``.

    Ids differ between workspaces, so a test can tell them apart.
    """
    name = "/".join((workspace_slug, *parts))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://fake-attio.test/{name}"))


def iso(timestamp: float) -> str:
    """Attio's timestamp format: nanosecond precision, UTC, ``Z``."""
    whole = int(timestamp)
    nanos = int(round((timestamp - whole) * 1_000_000)) * 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


# --- configuration: objects, lists, attributes --------------------------------


@dataclass
class Option:
    """A select option."""

    id: str
    title: str
    is_archived: bool = False


@dataclass
class Status:
    """A status of a status attribute."""

    id: str
    title: str
    is_archived: bool = False
    celebration_enabled: bool = False
    target_time_in_status: str | None = None


@dataclass
class AttributeDef:
    id: str
    parent_id: str  # object_id or list_id
    api_slug: str
    title: str
    type: str
    created_at: str
    description: str | None = None
    is_system_attribute: bool = False
    is_writable: bool = True
    is_required: bool = False
    is_unique: bool = False
    is_multiselect: bool = False
    is_archived: bool = False
    # record-reference: the object slugs a value may point at (empty: any).
    allowed_objects: tuple[str, ...] = ()
    default_currency_code: str | None = None
    options: list[Option] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)

    def option(self, key: str) -> Option | None:
        return _by_id_or_title(self.options, key)

    def status(self, key: str) -> Status | None:
        return _by_id_or_title(self.statuses, key)


def _by_id_or_title(items: list[Any], key: str) -> Any:
    for item in items:
        if key == item.id or key == item.title:
            return item
    folded = key.casefold()
    for item in items:
        if item.title.casefold() == folded:
            return item
    return None


@dataclass
class _HasAttributes:
    id: str
    api_slug: str
    created_at: str
    attributes: dict[str, AttributeDef]

    def attribute(self, key: str) -> AttributeDef | None:
        """An attribute by slug or id."""
        found = self.attributes.get(key)
        if found is not None:
            return found
        return next((a for a in self.attributes.values() if a.id == key), None)


@dataclass
class ObjectDef(_HasAttributes):
    singular_noun: str = ""
    plural_noun: str = ""


@dataclass
class ListDef(_HasAttributes):
    name: str = ""
    parent_object: list[str] = field(default_factory=list)  # object slugs
    created_by_actor: Actor = field(default_factory=dict)
    workspace_access: str | None = "full-access"
    member_access: list[tuple[str, str]] = field(default_factory=list)


# --- data ------------------------------------------------------------------------


@dataclass
class Record:
    id: str
    object_slug: str
    created_at: str
    values: Values


@dataclass
class Entry:
    id: str
    list_slug: str
    parent_object: str  # object slug
    parent_record_id: str
    created_at: str
    values: Values


@dataclass
class Member:
    id: str
    first_name: str
    last_name: str
    email_address: str
    access_level: str
    created_at: str
    avatar_url: str | None = None


@dataclass
class Note:
    id: str
    parent_object: str  # object slug
    parent_record_id: str
    title: str
    content_plaintext: str
    content_markdown: str
    created_by_actor: Actor
    created_at: str
    meeting_id: str | None = None


@dataclass
class Task:
    id: str
    content_plaintext: str
    deadline_at: str | None
    is_completed: bool
    linked_records: list[tuple[str, str]]  # (object slug, record id)
    assignees: list[str]  # workspace member ids
    created_by_actor: Actor
    created_at: str


@dataclass
class Comment:
    id: str
    thread_id: str
    content_plaintext: str
    author_id: str  # workspace member id
    created_at: str


@dataclass
class Thread:
    id: str
    created_at: str
    # What the thread hangs on: a record, or a list entry (and its parent record).
    object_slug: str
    record_id: str
    list_slug: str | None = None
    entry_id: str | None = None
    comment_ids: list[str] = field(default_factory=list)


@dataclass
class Store:
    """Everything one workspace holds. Mutate only under the fake's lock."""

    workspace_id: str
    workspace_slug: str
    objects: dict[str, ObjectDef] = field(default_factory=dict)  # by slug
    lists: dict[str, ListDef] = field(default_factory=dict)  # by slug
    records: dict[str, Record] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    notes: dict[str, Note] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    threads: dict[str, Thread] = field(default_factory=dict)
    comments: dict[str, Comment] = field(default_factory=dict)
    meetings: dict[str, Meeting] = field(default_factory=dict)  # with their call recordings

    # --- look-ups by slug or id -------------------------------------------------

    def object(self, key: str) -> ObjectDef | None:
        found = self.objects.get(key)
        if found is not None:
            return found
        return next((o for o in self.objects.values() if o.id == key), None)

    def list(self, key: str) -> ListDef | None:
        found = self.lists.get(key)
        if found is not None:
            return found
        return next((x for x in self.lists.values() if x.id == key), None)

    def parent(self, target: str, key: str) -> ObjectDef | ListDef | None:
        """An object (``target="objects"``) or a list (``"lists"``)."""
        return self.object(key) if target == "objects" else self.list(key)

    def record(self, object_slug: str, record_id: str) -> Record | None:
        found = self.records.get(record_id)
        if found is None or found.object_slug != object_slug:
            return None
        return found

    def member(self, key: str) -> Member | None:
        """A workspace member by id, email address or first name (any case)."""
        found = self.members.get(key)
        if found is not None:
            return found
        folded = key.casefold()
        for member in self.members.values():
            if folded in (
                member.email_address.casefold(),
                member.first_name.casefold(),
            ):
                return member
        return None

    def member_by_id_or_email(self, key: str) -> Member | None:
        """A workspace member as the API finds one: by id or email address."""
        found = self.members.get(key)
        if found is not None:
            return found
        folded = key.casefold()
        return next(
            (m for m in self.members.values() if m.email_address.casefold() == folded),
            None,
        )

    # --- deleting, with what hangs off it ------------------------------------------

    def delete_record(self, record_id: str) -> None:
        """Delete a record with its list entries, notes and comment threads, and
        drop it from references in other records and in tasks."""
        record = self.records.pop(record_id)
        for entry in [e for e in self.entries.values() if e.parent_record_id == record_id]:
            self.delete_entry(entry.id)
        for note in [n for n in self.notes.values() if n.parent_record_id == record_id]:
            del self.notes[note.id]
        for thread in [t for t in self.threads.values() if t.record_id == record_id]:
            self._delete_thread(thread.id)
        for other in self.records.values():
            for slug, values in other.values.items():
                other.values[slug] = [v for v in values if v.get("target_record_id") != record_id]
        for task in self.tasks.values():
            task.linked_records = [
                (slug, rid)
                for slug, rid in task.linked_records
                if (slug, rid) != (record.object_slug, record_id)
            ]

    def delete_entry(self, entry_id: str) -> None:
        del self.entries[entry_id]
        for thread in [t for t in self.threads.values() if t.entry_id == entry_id]:
            self._delete_thread(thread.id)

    def _delete_thread(self, thread_id: str) -> None:
        thread = self.threads.pop(thread_id)
        for comment_id in thread.comment_ids:
            self.comments.pop(comment_id, None)

    # --- conveniences for tests ---------------------------------------------------

    def record_named(self, object_slug: str, name: str) -> Record | None:
        """The first record of an object whose ``name`` is ``name``."""
        for record in self.records.values():
            if record.object_slug != object_slug:
                continue
            for value in record.values.get("name", []):
                if name in (value.get("value"), value.get("full_name")):
                    return record
        return None

    def record_id(self, object_slug: str, name: str) -> str:
        record = self.record_named(object_slug, name)
        if record is None:
            raise KeyError(f"no {object_slug} record named {name!r}")
        return record.id

    def entries_of(self, list_slug: str, record_id: str | None = None) -> list[Entry]:
        return [
            e
            for e in self.entries.values()
            if e.list_slug == list_slug and (record_id is None or e.parent_record_id == record_id)
        ]
