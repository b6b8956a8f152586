"""The portal as an OAuth authorization server over real HTTP, and a person going through
its pages: sign-in, then the consent page, with an HTTP client that keeps cookies.

`portal_at(settings, port)` points the portal's URLs (issuer, resource) at the port a
test serves it on; `Person` follows an authorization URL as a browser would, fills in
the forms and hands back the redirect the client receives.
"""

import contextlib
import json
import re
import threading
import time
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from ..conftest import PASSWORD

LOOPBACK_REDIRECT = "http://127.0.0.1:53682/callback"


def portal_at(settings, base: str) -> None:
    """The portal's public URL is `base` (what its issuer and resource are built from)."""
    settings.PORTAL_BASE_URL = base
    settings.CSRF_TRUSTED_ORIGINS = [base]
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OIDC_ISS_ENDPOINT": base,
        "OAUTH2_PROTECTED_RESOURCE_IDENTIFIER": f"{base}/mcp",
        "OAUTH2_PROTECTED_RESOURCE_AUTHORIZATION_SERVERS": [base],
        "OAUTH2_PROTECTED_RESOURCE_DOCUMENTATION": f"{base}/",
    }


def hidden_and_csrf(page: str) -> dict:
    """The hidden inputs of the page's (last) form, the CSRF token among them."""
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[unescape(name[1])] = unescape(value[1]) if value else ""
    return fields


class Person:
    """Someone at a browser: signs in when asked, then approves or denies."""

    def __init__(self, base: str, username: str, password: str = PASSWORD) -> None:
        self.base = base
        self.username = username
        self.password = password
        self.http = httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=30)

    async def close(self) -> None:
        await self.http.aclose()

    async def open(self, url: str) -> httpx.Response:
        """GET `url`, following redirects on the portal and signing in when sent to."""
        response = await self.http.get(url)
        while response.status_code == 302:
            location = urljoin(str(response.url), response.headers["location"])
            if not location.startswith(self.base):
                return response  # leaving the portal: back to the client
            if urlsplit(location).path == "/accounts/login/":
                response = await self.sign_in(location)
            else:
                response = await self.http.get(location)
        return response

    async def sign_in(self, login_url: str) -> httpx.Response:
        page = await self.http.get(login_url)
        fields = hidden_and_csrf(page.text)
        fields.update(username=self.username, password=self.password)
        return await self.http.post(login_url, data=fields, headers={"Referer": login_url})

    async def consent(
        self,
        url: str,
        *,
        allow: bool = True,
        access: str = "read_only",
        connection=None,
        tool_profile: str | None = None,
    ) -> httpx.Response:
        """Open the authorization URL and answer the consent page; the final answer."""
        page = await self.open(url)
        assert page.status_code == 200, page.text
        assert "Connect " in page.text, page.text
        fields = hidden_and_csrf(page.text)
        if allow:
            fields["allow"] = "on"
            fields["access"] = access
            if tool_profile is not None:
                fields["tool_profile"] = tool_profile
            if connection is not None:
                fields["connection"] = str(connection.pk)
            elif first := re.search(
                r'<select name="connection"[^>]*>\s*<option value="([^"]*)"', page.text
            ):
                fields["connection"] = first[1]  # what a browser sends untouched
        consent_url = str(page.url)
        return await self.http.post(consent_url, data=fields, headers={"Referer": consent_url})

    async def approve(self, url: str, **options) -> dict:
        """Approve; the query of the redirect back to the client."""
        answer = await self.consent(url, **options)
        assert answer.status_code == 302, re.findall(
            r"field-error\">([^<]*)|form-error[^>]*>(.*?)</div>", answer.text, re.S
        )
        location = answer.headers["location"]
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()} | {
            "_location": location
        }


@contextlib.contextmanager
def client_metadata_document(*, behaviour: str = "good", **metadata):
    """A client ID metadata document served on loopback; yields its client id, an https
    URL (as clients and the toolkit insist) that OAUTH_CIMD_LOOPBACK_HTTP fetches over
    plain http. `behaviour` makes it misbehave: "big", "slow", "redirect", "other id",
    "not json"."""
    served = {}

    class Document(BaseHTTPRequestHandler):
        def do_GET(self):
            document = {"client_id": served["client_id"], **metadata}
            if behaviour == "other id":
                document["client_id"] = served["client_id"].replace("client.json", "other.json")
            if behaviour == "big":
                document["padding"] = "x" * 20_000
            body = json.dumps(document).encode()
            if behaviour == "slow":
                time.sleep(3)
            if behaviour == "redirect":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere.json")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            kind = "text/html" if behaviour == "not json" else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Document)
    served["client_id"] = f"https://127.0.0.1:{server.server_port}/oauth/client.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served["client_id"]
    finally:
        server.shutdown()
        server.server_close()
