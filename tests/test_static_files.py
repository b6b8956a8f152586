"""Static files and the favicon, as uvicorn serves them through the ASGI application."""

import asyncio
import warnings
from pathlib import Path

from asgiref.sync import async_to_sync
from django.contrib.staticfiles import finders

from attio_portal.asgi import django_app

CSS = "/static/portal/portal.css"


def asgi_request(path: str, method: str = "GET", headers=()) -> tuple[int, dict, bytes]:
    """One request through the portal's Django ASGI handler: (status, headers, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = []

    async def run() -> None:
        requested = False

        async def receive():
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays connected

        async def send(message):
            sent.append(message)

        await django_app(scope, receive, send)

    async_to_sync(run)()
    start = sent[0]
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body


def sync_iterator_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "StreamingHttpResponse" in str(w.message)]


def test_static_files_are_streamed_without_the_sync_iterator_warning(db):
    css = Path(finders.find("portal/portal.css")).read_bytes()
    big_path = "admin/js/vendor/jquery/jquery.js"  # several chunks
    big = Path(finders.find(big_path)).read_bytes()
    assert len(big) > 3 * 64 * 1024

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, headers, body = asgi_request(CSS)
        assert (status, body) == (200, css)
        assert headers["content-type"].startswith("text/css")
        # Django's security headers still apply to static files.
        assert headers["x-content-type-options"] == "nosniff"
        assert asgi_request(f"/static/{big_path}")[::2] == (200, big)
        assert asgi_request(CSS, method="HEAD")[::2] == (200, b"")
        etag = headers["etag"].encode()
        assert asgi_request(CSS, headers=[(b"if-none-match", etag)])[::2] == (304, b"")
        assert asgi_request(CSS, headers=[(b"range", b"bytes=0-9")])[::2] == (206, css[:10])

    assert sync_iterator_warnings(caught) == []


def test_favicon_ico_leads_to_the_portals_icon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    status, headers, body = asgi_request(response["Location"])
    assert status == 200
    assert headers["content-type"].startswith("image/svg+xml")
    assert body.startswith(b"<svg")


def test_portal_and_admin_pages_name_their_icon(client, db):
    for url in ("/accounts/login/", "/admin/login/"):
        page = client.get(url).text
        assert '<link rel="icon" href="/static/portal/favicon.svg"' in page, url
