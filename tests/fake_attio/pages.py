"""HTML pages served by the fake's /authorize endpoint.

They are branded "Fake Attio" and say "test double" in the title and the page,
so a screenshot or a person at the keyboard can never mistake them for Attio's.
Element ids (``workspace``, ``approve``, ``deny``) are stable for browser tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

_STYLE = """
body { font-family: system-ui, sans-serif; background: #f4f4f6; color: #1c1d1f;
       margin: 0; display: flex; justify-content: center; }
main { background: #fff; margin-top: 8vh; padding: 2rem 2.5rem; max-width: 28rem;
       border-radius: 12px; box-shadow: 0 2px 12px rgba(0, 0, 0, .08); }
.brand { font-weight: 700; font-size: 1.1rem; }
.badge { background: #ffe08a; color: #5c4300; border-radius: 4px; font-size: .7rem;
         padding: .1rem .4rem; margin-left: .4rem; vertical-align: middle; }
h1 { font-size: 1.3rem; margin: 1.2rem 0 .6rem; }
code { background: #f0f0f3; padding: .05rem .3rem; border-radius: 4px;
       word-break: break-all; }
ul { padding-left: 1.2rem; font-size: .9rem; }
label { display: block; margin: 1rem 0 .3rem; font-weight: 600; }
select { width: 100%; padding: .4rem; font-size: 1rem; }
.buttons { display: flex; gap: .8rem; margin-top: 1.5rem; }
button { flex: 1; padding: .6rem; font-size: 1rem; border-radius: 8px;
         border: 1px solid #c9c9d1; background: #fff; cursor: pointer; }
button.primary { background: #266df0; border-color: #266df0; color: #fff; }
.error { color: #a31515; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} - Fake Attio (test double)</title>"
        f"<style>{_STYLE}</style></head><body><main>"
        '<div class="brand">Fake Attio<span class="badge">TEST DOUBLE</span></div>'
        f"{body}</main></body></html>\n"
    )


def consent_page(
    *,
    client_id: str,
    redirect_uri: str,
    scopes: str,
    workspaces: Iterable[tuple[str, str]],
    hidden: Mapping[str, str],
) -> str:
    """The consent screen: workspace choice plus Approve / Deny.

    ``workspaces`` is (id, label) pairs, the first preselected. ``hidden`` carries
    the original authorize parameters back to the POST.
    """
    options = "".join(
        f'<option value="{escape(ws_id)}"{" selected" if i == 0 else ""}>{escape(label)}</option>'
        for i, (ws_id, label) in enumerate(workspaces)
    )
    hidden_fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in hidden.items()
    )
    scope_items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes.split())
    body = (
        "<h1>Allow access to your workspace?</h1>"
        f"<p>The app <code>{escape(client_id)}</code> asks for access to one of "
        "your workspaces with these scopes:</p>"
        f"<ul>{scope_items}</ul>"
        f"<p>You will be sent back to <code>{escape(redirect_uri)}</code>.</p>"
        '<form method="post" action="/authorize">'
        f"{hidden_fields}"
        '<label for="workspace">Workspace</label>'
        f'<select id="workspace" name="workspace">{options}</select>'
        '<div class="buttons">'
        '<button type="submit" id="deny" name="decision" value="deny">Deny</button>'
        '<button type="submit" id="approve" name="decision" value="approve" '
        'class="primary">Approve</button>'
        "</div></form>"
    )
    return _page("Authorize", body)


def error_page(message: str) -> str:
    """Shown instead of redirecting when the client or redirect URI is bad."""
    body = (
        "<h1>Authorization failed</h1>"
        f'<p class="error" id="error">{escape(message)}</p>'
        "<p>The request was not redirected, because the client or its redirect "
        "URI could not be trusted.</p>"
    )
    return _page("Authorization error", body)
