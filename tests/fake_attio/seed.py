"""The data every fake workspace starts with (and gets back on ``fake.reset()``).

Ids are uuid5s of the workspace slug and a name (``model.seed_id``), so they are
the same on every run and differ between workspaces. Tests find things by name:

    store = fake.store("acme")
    ada = store.record_id("people", "Ada Lovelace")
    pipeline = store.list("sales_pipeline")
    alice = store.member("alice")          # first name, email or id

What is seeded, in each workspace:

- objects ``people``, ``companies``, ``deals`` (attributes below);
- companies "Acme Corp" (acme.com), "Initech" (initech.com), "Hooli" (hooli.com);
- people "Ada Lovelace" (ada@acme.com, Acme Corp), "Grace Hopper"
  (grace@initech.com, Initech), "Alan Turing" (alan@hooli.com, Hooli);
- deals "Acme expansion" (In Progress, 50 000 USD, Acme Corp, owner Alice),
  "Initech renewal" (Lead, 12 000 USD, Initech), "Hooli pilot" (Won, 8 000 USD);
- list ``sales_pipeline`` ("Sales pipeline", of companies) with a ``stage``
  status and a ``priority`` select; entries for Acme Corp and Initech;
- members Alice Anders (admin; the member who approves OAuth grants, i.e.
  ``Workspace.member_id``) and Bob Baker (member), emails ``alice@<slug>.test``
  and ``bob@<slug>.test``;
- a note on Ada Lovelace ("Intro call"), a task "Follow up with Ada" (assigned
  to Bob, linked to Ada), and a thread on Acme Corp with one comment by Alice.
"""

from __future__ import annotations

from typing import Any

from . import meetings
from .model import (
    AttributeDef,
    Comment,
    Entry,
    ListDef,
    Member,
    Note,
    ObjectDef,
    Option,
    Record,
    Status,
    Store,
    Task,
    Thread,
    iso,
    seed_id,
)
from .values import write_values

_BASE_TIME = 1705309200.0  # 2024-01-15T09:00:00Z


def _attr(slug: str, title: str, type_: str, **config: Any) -> dict[str, Any]:
    return {"slug": slug, "title": title, "type": type_, **config}


# slug -> (singular noun, plural noun, attributes). Every object also gets the
# system attribute created_by (actor-reference, not writable).
OBJECTS: dict[str, tuple[str, str, list[dict[str, Any]]]] = {
    "people": (
        "Person",
        "People",
        [
            _attr("name", "Name", "personal-name"),
            _attr(
                "email_addresses",
                "Email addresses",
                "email-address",
                is_unique=True,
                is_multiselect=True,
            ),
            _attr("phone_numbers", "Phone numbers", "phone-number", is_multiselect=True),
            _attr("company", "Company", "record-reference", allowed_objects=("companies",)),
            _attr("job_title", "Job title", "text"),
        ],
    ),
    "companies": (
        "Company",
        "Companies",
        [
            _attr("name", "Name", "text"),
            _attr("domains", "Domains", "domain", is_unique=True, is_multiselect=True),
            _attr("description", "Description", "text"),
            _attr(
                "categories",
                "Categories",
                "select",
                is_multiselect=True,
                options=("B2B", "B2C", "SaaS", "Enterprise", "E-commerce"),
            ),
            _attr(
                "team",
                "Team",
                "record-reference",
                is_multiselect=True,
                allowed_objects=("people",),
            ),
        ],
    ),
    "deals": (
        "Deal",
        "Deals",
        [
            _attr("name", "Deal name", "text", is_required=True),
            _attr(
                "stage",
                "Deal stage",
                "status",
                is_required=True,
                statuses=("Lead", "In Progress", "Won", "Lost"),
            ),
            _attr("value", "Deal value", "currency", default_currency_code="USD"),
            _attr("owner", "Deal owner", "actor-reference"),
            _attr(
                "associated_company",
                "Associated company",
                "record-reference",
                allowed_objects=("companies",),
            ),
            _attr(
                "associated_people",
                "Associated people",
                "record-reference",
                is_multiselect=True,
                allowed_objects=("people",),
            ),
        ],
    ),
}

PIPELINE_ATTRIBUTES = [
    _attr(
        "stage",
        "Stage",
        "status",
        statuses=("Prospecting", "Qualified", "Proposal", "Closed won", "Closed lost"),
    ),
    _attr("priority", "Priority", "select", options=("Low", "Medium", "High")),
]

COMPANIES = [
    {
        "name": ["Acme Corp"],
        "domains": ["acme.com"],
        "description": ["Makes everything."],
        "categories": ["B2B", "Enterprise"],
    },
    {
        "name": ["Initech"],
        "domains": ["initech.com"],
        "description": ["Software for banks."],
        "categories": ["SaaS"],
    },
    {"name": ["Hooli"], "domains": ["hooli.com"], "categories": ["B2C"]},
]

# (values, name of the company they work at)
PEOPLE = [
    (
        {
            "name": ["Ada Lovelace"],
            "email_addresses": ["ada@acme.com"],
            "phone_numbers": ["+14155550101"],
            "job_title": ["Chief Analyst"],
        },
        "Acme Corp",
    ),
    (
        {
            "name": ["Grace Hopper"],
            "email_addresses": ["grace@initech.com"],
            "job_title": ["Head of Engineering"],
        },
        "Initech",
    ),
    (
        {
            "name": ["Alan Turing"],
            "email_addresses": ["alan@hooli.com"],
            "job_title": ["Researcher"],
        },
        "Hooli",
    ),
]

# (name, stage, value in USD, company, person or None, owned by Alice)
DEALS = [
    ("Acme expansion", "In Progress", 50000, "Acme Corp", "Ada Lovelace", True),
    ("Initech renewal", "Lead", 12000, "Initech", "Grace Hopper", False),
    ("Hooli pilot", "Won", 8000, "Hooli", None, False),
]

# (company, stage, priority) in the sales pipeline
PIPELINE_ENTRIES = [("Acme Corp", "Qualified", "High"), ("Initech", "Prospecting", "Medium")]


def _slugify(name: str) -> str:
    return "-".join(name.lower().split())


def _ref(record: Record) -> list[dict[str, str]]:
    return [{"target_object": record.object_slug, "target_record_id": record.id}]


def _member_ref(member_id: str) -> list[dict[str, str]]:
    return [{"referenced_actor_type": "workspace-member", "referenced_actor_id": member_id}]


class _Seeder:
    def __init__(self, workspace_id: str, slug: str, owner_member_id: str) -> None:
        self.slug = slug
        self.store = Store(workspace_id=workspace_id, workspace_slug=slug)
        self.alice_id = owner_member_id
        self.minute = 0

    def at(self) -> str:
        """Seed timestamps: one minute apart, in creation order."""
        self.minute += 1
        return iso(_BASE_TIME + 60 * self.minute)

    def id(self, *parts: str) -> str:
        return seed_id(self.slug, *parts)

    @property
    def alice(self) -> dict[str, Any]:
        return {"type": "workspace-member", "id": self.alice_id}

    def build(self) -> Store:
        self.members()
        for slug, (singular, plural, attributes) in OBJECTS.items():
            self.object(slug, singular, plural, attributes)
        self.records()
        self.pipeline()
        self.activity()
        return self.store

    # --- configuration ------------------------------------------------------------

    def attribute(self, kind: str, parent: str, parent_id: str, spec: dict) -> AttributeDef:
        config = dict(spec)
        slug, title, type_ = config.pop("slug"), config.pop("title"), config.pop("type")
        options = [
            Option(self.id(kind, parent, slug, "option", title), title)
            for title in config.pop("options", ())
        ]
        statuses = [
            Status(
                self.id(kind, parent, slug, "status", title),
                title,
                celebration_enabled=title in ("Won", "Closed won"),
            )
            for title in config.pop("statuses", ())
        ]
        return AttributeDef(
            id=self.id(kind, parent, "attribute", slug),
            parent_id=parent_id,
            api_slug=slug,
            title=title,
            type=type_,
            created_at=self.at(),
            options=options,
            statuses=statuses,
            **config,
        )

    def object(self, slug: str, singular: str, plural: str, attributes: list[dict]) -> None:
        object_id = self.id("object", slug)
        created_by = _attr(
            "created_by",
            "Created by",
            "actor-reference",
            is_system_attribute=True,
            is_writable=False,
            description="The actor that created this record.",
        )
        attrs = [self.attribute("object", slug, object_id, a) for a in [*attributes, created_by]]
        self.store.objects[slug] = ObjectDef(
            id=object_id,
            api_slug=slug,
            created_at=self.at(),
            attributes={a.api_slug: a for a in attrs},
            singular_noun=singular,
            plural_noun=plural,
        )

    def members(self) -> None:
        for member_id, first, last, level in (
            (self.alice_id, "Alice", "Anders", "admin"),
            (self.id("member", "bob"), "Bob", "Baker", "member"),
        ):
            self.store.members[member_id] = Member(
                id=member_id,
                first_name=first,
                last_name=last,
                email_address=f"{first.lower()}@{self.slug}.test",
                access_level=level,
                created_at=self.at(),
            )

    # --- records and entries ------------------------------------------------------

    def record(self, object_slug: str, values: dict[str, Any]) -> Record:
        name = values["name"][0]
        at = self.at()
        stored = write_values(
            self.store,
            self.store.objects[object_slug],
            {**values, "created_by": _member_ref(self.alice_id)},
            mode="create",
            existing=None,
            actor=self.alice,
            at=at,
            system=True,
        )
        record = Record(self.id("record", object_slug, _slugify(name)), object_slug, at, stored)
        self.store.records[record.id] = record
        return record

    def records(self) -> None:
        store = self.store
        companies = {c["name"][0]: self.record("companies", c) for c in COMPANIES}
        for values, company_name in PEOPLE:
            company = companies[company_name]
            person = self.record("people", {**values, "company": _ref(company)})
            company.values = write_values(
                store,
                store.objects["companies"],
                {"team": _ref(person)},
                mode="append",
                existing=company.values,
                actor=self.alice,
                at=company.created_at,
            )
        for name, stage, value, company_name, person, owned in DEALS:
            values: dict[str, Any] = {
                "name": [name],
                "stage": [stage],
                "value": [value],
                "associated_company": _ref(companies[company_name]),
            }
            if person:
                values["associated_people"] = _ref(store.record_named("people", person))
            if owned:
                values["owner"] = _member_ref(self.alice_id)
            self.record("deals", values)

    def pipeline(self) -> None:
        store = self.store
        list_id = self.id("list", "sales_pipeline")
        attrs = [self.attribute("list", "sales_pipeline", list_id, a) for a in PIPELINE_ATTRIBUTES]
        pipeline = ListDef(
            id=list_id,
            api_slug="sales_pipeline",
            created_at=self.at(),
            attributes={a.api_slug: a for a in attrs},
            name="Sales pipeline",
            parent_object=["companies"],
            created_by_actor=self.alice,
            workspace_access="full-access",
            member_access=[
                (self.alice_id, "full-access"),
                (self.id("member", "bob"), "read-and-write"),
            ],
        )
        store.lists[pipeline.api_slug] = pipeline
        for company_name, stage, priority in PIPELINE_ENTRIES:
            company = store.record_named("companies", company_name)
            at = self.at()
            values = write_values(
                store,
                pipeline,
                {"stage": [stage], "priority": [priority]},
                mode="create",
                existing=None,
                actor=self.alice,
                at=at,
            )
            entry_id = self.id("entry", "sales_pipeline", _slugify(company_name))
            store.entries[entry_id] = Entry(
                entry_id, "sales_pipeline", "companies", company.id, at, values
            )

    # --- a note, a task and a comment thread -----------------------------------------

    def activity(self) -> None:
        store = self.store
        ada = store.record_id("people", "Ada Lovelace")
        note = Note(
            id=self.id("note", "intro-call"),
            parent_object="people",
            parent_record_id=ada,
            title="Intro call",
            content_plaintext="Ada wants a demo next week.\nBudget approved.",
            content_markdown="Ada wants a **demo** next week.\n\n- Budget approved.",
            created_by_actor=self.alice,
            created_at=self.at(),
        )
        store.notes[note.id] = note
        task = Task(
            id=self.id("task", "follow-up-with-ada"),
            content_plaintext="Follow up with Ada",
            deadline_at="2024-02-01T17:00:00.000000000Z",
            is_completed=False,
            linked_records=[("people", ada)],
            assignees=[self.id("member", "bob")],
            created_by_actor=self.alice,
            created_at=self.at(),
        )
        store.tasks[task.id] = task
        at = self.at()
        thread = Thread(
            id=self.id("thread", "acme-corp"),
            created_at=at,
            object_slug="companies",
            record_id=store.record_id("companies", "Acme Corp"),
        )
        comment = Comment(
            id=self.id("comment", "acme-corp", "1"),
            thread_id=thread.id,
            content_plaintext="Acme is ready to expand, let's prepare a proposal.",
            author_id=self.alice_id,
            created_at=at,
        )
        thread.comment_ids.append(comment.id)
        store.threads[thread.id] = thread
        store.comments[comment.id] = comment


def build_store(workspace_id: str, slug: str, owner_member_id: str) -> Store:
    """A freshly seeded store for one workspace."""
    store = _Seeder(workspace_id, slug, owner_member_id).build()
    meetings.seed(store, owner_member_id)
    return store
