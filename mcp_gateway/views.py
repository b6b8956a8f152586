"""Portal pages for API keys."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from connections.services import client_ip

from . import services
from .forms import ApiKeyForm
from .models import ApiKey, ConnectedApp

# The MCP Inspector the setup snippet runs, pinned: on Node.js 20, npx would otherwise
# pick the newest release whose `engines` admit Node 20 (0.15.0), which has no
# `--transport`. 1.0.3 is the newest whose command line and all its dependencies support
# Node 20 (only its own `engines` asks for 22.7.5, so npm warns). 2.x and its
# dependencies (commander 15, undici 8) ask for Node 22.12-22.19.
INSPECTOR_VERSION = "1.0.3"
INSPECTOR_NODE = "20"


def setup_snippets(plaintext: str) -> dict[str, str]:
    """Ready-to-paste client configuration for a new key. Clients that connect with
    OAuth (Claude.ai, Claude Desktop's connectors, ChatGPT) need only the MCP URL, so
    they have no snippet here; key_created.html says so."""
    url = f"{settings.PORTAL_BASE_URL}/mcp"
    header = f"Authorization: Bearer {plaintext}"
    return {
        "claude_code": f'claude mcp add --transport http attio {url} --header "{header}"',
        "cursor": json.dumps(
            {
                "mcpServers": {
                    "attio": {"url": url, "headers": {"Authorization": f"Bearer {plaintext}"}}
                }
            },
            indent=2,
        ),
        "vscode": json.dumps(
            {
                "servers": {
                    "attio": {
                        "type": "http",
                        "url": url,
                        "headers": {"Authorization": f"Bearer {plaintext}"},
                    }
                }
            },
            indent=2,
        ),
        # mcp-remote bridges Claude Desktop's stdio to HTTP; the key travels in an env
        # variable because arguments with spaces break on some platforms.
        "claude_desktop": json.dumps(
            {
                "mcpServers": {
                    "attio": {
                        "command": "npx",
                        "args": [
                            "-y",
                            "mcp-remote",
                            url,
                            "--header",
                            "Authorization:${ATTIO_PORTAL_AUTH}",
                        ],
                        "env": {"ATTIO_PORTAL_AUTH": f"Bearer {plaintext}"},
                    }
                }
            },
            indent=2,
        ),
        "inspector": (
            f"npx @modelcontextprotocol/inspector@{INSPECTOR_VERSION} --cli {url} --transport http "
            f'--header "{header}" --method tools/list'
        ),
    }


@never_cache
@login_required
def key_create(request):
    if not request.user.attio_connections.live().exists():
        messages.info(request, "Connect an Attio workspace first; a key acts on one.")
        return redirect("dashboard")
    form = ApiKeyForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            key, plaintext = services.create_api_key(
                request.user,
                connection=form.cleaned_data["connection"],
                name=form.cleaned_data["name"],
                read_only=form.read_only,
                tool_profile=form.cleaned_data["tool_profile"],
                expires_at=form.expires_at,
                ip=client_ip(request),
                form_nonce=form.cleaned_data["nonce"],
            )
        except services.AlreadyCreated as e:
            messages.info(request, f"{e} If you didn't copy it, revoke it and create another.")
            return redirect("dashboard")
        except services.ApiKeyError as e:
            form.add_error(None, str(e))
        else:
            return show_new_key(request, key, plaintext)
    return render(request, "mcp_gateway/key_form.html", {"form": form})


def show_new_key(request, key: ApiKey, plaintext: str, *, rolled: ApiKey | None = None):
    # Shown once, in this response only: it is never stored or shown again.
    response = render(
        request,
        "mcp_gateway/key_created.html",
        {
            "key": key,
            "plaintext": plaintext,
            "rolled": rolled,
            "snippets": setup_snippets(plaintext),
            "mcp_url": f"{settings.PORTAL_BASE_URL}/mcp",
            "inspector_version": INSPECTOR_VERSION,
            "inspector_node": INSPECTOR_NODE,
        },
    )
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@login_required
@require_POST
def key_roll(request, pk: int):
    key = get_object_or_404(ApiKey.objects.select_related("connection"), pk=pk, owner=request.user)
    try:
        successor, plaintext = services.roll_api_key(key, by=request.user, ip=client_ip(request))
    except services.ApiKeyError as e:
        messages.error(request, str(e))
        return redirect("dashboard")
    key.refresh_from_db()
    return show_new_key(request, successor, plaintext, rolled=key)


@login_required
def key_revoke(request, pk: int):
    key = get_object_or_404(ApiKey.objects.select_related("connection"), pk=pk, owner=request.user)
    if request.method == "POST":
        if services.revoke_api_key(key, by=request.user, ip=client_ip(request)):
            messages.success(request, f"Revoked the key “{key.name}”. It stops working at once.")
        return redirect("dashboard")
    return render(request, "mcp_gateway/key_revoke.html", {"key": key})


@login_required
@require_POST
def app_revoke(request, pk: int):
    app = get_object_or_404(
        ConnectedApp.objects.select_related("client", "connection"), pk=pk, user=request.user
    )
    if services.revoke_connected_app(app, by=request.user, ip=client_ip(request)):
        messages.success(request, f"Revoked “{app.client_name}”. Its access ends at once.")
    return redirect("dashboard")
