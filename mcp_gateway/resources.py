"""The workspace's shape as MCP resources, for a client that loads it once rather than by
tool calls; and prompts for common CRM work, each naming the tools to use.

Each resource is read with the caller's own connection, through the tools that list the
same things (`list_objects`, `list_attributes`, `list_lists`), so it says what they say,
as JSON. A read counts against the key's or app's rate limit as a tool call does, is
audited as one, and is refused where the owner's tool policy leaves out that tool; a
revoked key or app never gets here (auth.py refuses it first).
"""

import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from django.conf import settings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import BaseModel, Field

from connections import attio

from . import auth, policy
from .tools import lists, schema
from .tools._arguments import SLUG_PATTERN
from .tools._call import ToolFailure

JSON = "application/json"


def register(server: MCPServer) -> None:
    server.resource(
        "attio://objects",
        name="objects",
        title="Objects",
        description="The workspace's objects and their API slugs (as `list_objects`).",
        mime_type=JSON,
    )(read_objects)
    server.resource(
        "attio://lists",
        name="lists",
        title="Lists",
        description="The workspace's lists and their API slugs (as `list_lists`).",
        mime_type=JSON,
    )(read_lists)
    server.resource(
        "attio://objects/{object}/attributes",
        name="object-attributes",
        title="An object's attributes",
        description="An object's attributes, with select options and statuses "
        "(as `list_attributes`).",
        mime_type=JSON,
    )(read_object_attributes)
    server.resource(
        "attio://lists/{list}/attributes",
        name="list-attributes",
        title="A list's attributes",
        description="A list's own attributes, with select options and statuses "
        "(as `list_attributes`).",
        mime_type=JSON,
    )(read_list_attributes)
    for prompt in (prepare_for_meeting, log_call, review_pipeline):
        server.prompt(title=PROMPT_TITLES[prompt.__name__])(prompt)


# --- Resources ------------------------------------------------------------------------------

# The tool each resource is read through: where the owner's tool policies leave it out,
# the resource is neither listed nor read.
RESOURCE_TOOLS = {
    "attio://objects": "list_objects",
    "attio://lists": "list_lists",
    "attio://objects/{object}/attributes": "list_attributes",
    "attio://lists/{list}/attributes": "list_attributes",
}
LISTINGS = {"resources/list": ("resources", "uri")}
LISTINGS["resources/templates/list"] = ("resourceTemplates", "uriTemplate")


async def middleware(ctx, call_next):
    """The resource listings, without the resources the caller's policies leave out."""
    result = await call_next(ctx)
    if ctx.method in LISTINGS:
        caller = auth.current_caller()
        key, uri = LISTINGS[ctx.method]
        result[key] = [
            r
            for r in result.get(key, [])
            if policy.in_tool_policy(caller, RESOURCE_TOOLS.get(r.get(uri)))
        ]
    return result


async def read_objects() -> str:
    return await read(schema.list_objects)


async def read_lists() -> str:
    return await read(lists.list_lists)


async def read_object_attributes(object: str) -> str:
    return await read(schema.list_attributes, "objects", slug(object, "object"))


async def read_list_attributes(list: str) -> str:
    return await read(schema.list_attributes, "lists", slug(list, "list"))


def slug(value: str, noun: str) -> str:
    """The template's argument if it is a slug or UUID: it goes into Attio's URL path."""
    if not re.fullmatch(SLUG_PATTERN, value) or len(value) > 128:
        raise MCPError(
            code=INVALID_PARAMS,
            message=f"The {noun} must be an API slug or a UUID (letters, digits, '-' and '_').",
        )
    return value


async def read(tool: Callable[..., Awaitable[BaseModel]], *arguments: str) -> str:
    """The tool's answer for the caller, as lean JSON; its failure as the resource's.
    Audited as the tool's call is, under `resource:` and the tool's name."""
    caller = auth.current_caller()
    started = time.monotonic()
    name = f"resource:{tool.__name__}"
    limit = settings.MCP_RATE_LIMIT_PER_MINUTE
    if not policy.in_tool_policy(caller, tool.__name__):
        policy.audit(caller, name, ok=False, error_code="not_in_policy", started=started)
        raise ResourceError(policy.tool_policy_refusal(caller, tool.__name__))
    if wait := policy.rate_limiter.retry_after(caller.bucket, limit):
        policy.audit(caller, name, ok=False, error_code="rate_limited", started=started)
        raise ResourceError(f"Too many calls (limit: {limit} a minute). Wait {wait:.0f} seconds.")
    observing = attio.answer_observer.set(caller.outcome.saw_answer)
    try:
        answer = await tool(caller, *arguments)
    except ToolFailure as failure:
        policy.audit(caller, name, ok=False, error_code=failure.code, started=started)
        if failure.code in ("not_found", "http_404"):
            raise ResourceNotFoundError(str(failure)) from None
        raise ResourceError(str(failure)) from None
    finally:
        attio.answer_observer.reset(observing)
    policy.audit(caller, name, ok=True, error_code="", started=started)
    return answer.model_dump_json(exclude_none=True)


# --- Prompts --------------------------------------------------------------------------------

PROMPT_TITLES = {
    "prepare_for_meeting": "Prepare for a meeting",
    "log_call": "Log a call",
    "review_pipeline": "Review a pipeline",
}


def with_profile(text: str) -> str:
    """The prompt, and what the caller's access changes: a read-only key or app, or one
    whose owner's tool policies allow no writes, may only propose writes; a compact one
    reaches the tools it names through `attio_request`."""
    caller = auth.current_caller()
    if caller.read_only:
        text += (
            " This access is read-only: where this asks to create or change something, "
            "write out what you would create instead, for me to add."
        )
    elif not policy.policy_allows_writes(caller):
        text += (
            " My tool policy allows no writes: where this asks to create or change "
            "something, write out what you would create instead, for me to add."
        )
    if caller.tool_profile == "compact":
        text += (
            " Tools not among yours are reached through `attio_request` "
            "(`find_attio_operation` finds the Attio operation)."
        )
    return text


async def prepare_for_meeting(
    company: Annotated[str, Field(description="The company's name or domain")],
) -> str:
    """Brief me before a meeting with a company: who they are, history, open work."""
    return with_profile(
        f"I have a meeting with {company}. Find the company with `search_records` (object "
        "`companies`) and read it with `get_record`. Then gather its recent notes "
        "(`list_notes`), open tasks (`list_tasks`), the lists and deals it is in "
        "(`list_record_entries`) and its people (`query_records` on `people`, filtered by "
        "company). Brief me in a few lines: who they are, where things stand, open tasks, "
        "and three questions worth asking. Change nothing."
    )


async def log_call(
    contact: Annotated[str, Field(description="The person or company called")],
    notes: Annotated[str, Field(description="What was said")],
    follow_ups: Annotated[str, Field(description="What to do next, with dates")] = "",
) -> str:
    """Log a call with a person or company: the notes, and tasks for the follow-ups."""
    text = (
        f"Log my call with {contact}. Find the record with `search_records` and, if more "
        "than one matches, ask me which. Add these notes to it with `create_note`, titled "
        f"with the date:\n\n{notes}\n\n"
    )
    if follow_ups:
        text += (
            "Then create one task per follow-up with `create_task`, linked to the record, "
            f"with a deadline where one is given:\n\n{follow_ups}\n\n"
        )
    else:
        text += "Then suggest follow-up tasks and create them with `create_task` once I agree. "
    return with_profile(text + "Finish with what you created.")


async def review_pipeline(
    list: Annotated[str, Field(description="The list's name or API slug")],
) -> str:
    """Review a pipeline list: entries per stage, what is stuck, next steps."""
    return with_profile(
        f"Review the pipeline list {list}. Use `list_attributes` (target `lists`) for its "
        "stage and value attributes, then `query_list_entries` for its entries, page by "
        "page (`next_offset`). Summarise the count and value per stage, name the entries "
        "that look stuck or have no open task (`list_tasks`), and suggest next steps. "
        "Change nothing without asking me."
    )
