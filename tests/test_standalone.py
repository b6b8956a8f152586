"""A clone of the repository stands on its own: Attio's OpenAPI document is inside it,
nothing refers to files beside the checkout, and the code makes the folders it writes to."""

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from connections import openapi
from connections.openapi import refresh

REPO = Path(__file__).resolve().parent.parent

# Spelled in two parts so that this file does not match itself.
OUTSIDE_REFERENCE = re.compile(r"\.\./" + r"shared\b|\bshared/(attio|notes|seed|hooks)/")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


def test_no_tracked_file_outside_bench_refers_to_files_beside_the_checkout():
    offenders = []
    for path in tracked_files():
        relative = path.relative_to(REPO)
        if relative.parts[0] == "bench" or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_REFERENCE.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_the_reference_pattern_catches_what_it_is_for():
    assert OUTSIDE_REFERENCE.search("read ../" + "shared" + "/attio/openapi.json")
    assert OUTSIDE_REFERENCE.search("see shared" + "/attio/API-NOTES.md")
    assert not OUTSIDE_REFERENCE.search("a shared pool; shared_task")


def test_bundled_openapi_document_is_in_the_repository_and_valid_openapi_3_1():
    path = openapi.BUNDLED_PATH
    assert path.is_relative_to(REPO)
    assert str(path.relative_to(REPO)) in {str(p.relative_to(REPO)) for p in tracked_files()}
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_source_note_records_the_bundled_documents_sha256():
    note = (openapi.BUNDLED_PATH.parent / "SOURCE.md").read_text(encoding="utf-8")
    recorded = re.search(r"\*\*sha256:\*\* `([0-9a-f]{64})`", note)
    assert recorded, "SOURCE.md has no sha256 line"
    assert recorded.group(1) == hashlib.sha256(openapi.BUNDLED_PATH.read_bytes()).hexdigest()


def test_spec_loader_reads_the_bundled_copy_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.delenv("ATTIO_OPENAPI_PATH", raising=False)
    assert openapi.spec_path() == openapi.BUNDLED_PATH
    other = tmp_path / "other.json"
    monkeypatch.setenv("ATTIO_OPENAPI_PATH", str(other))
    assert openapi.spec_path() == other


# --- make attio-spec ------------------------------------------------------------------


@pytest.fixture
def serve_document():
    """Serve bytes at http://127.0.0.1:PORT/openapi/api; returns a function that sets them."""
    served = {"status": 200, "body": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(served["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(served["body"])))
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(body: bytes, status: int = 200) -> str:
        served.update(status=status, body=body)
        return f"http://127.0.0.1:{server.server_address[1]}/openapi/api"

    yield serve
    server.shutdown()
    server.server_close()


@pytest.fixture
def current_copy(tmp_path) -> Path:
    path = tmp_path / "attio.json"
    path.write_bytes(openapi.BUNDLED_PATH.read_bytes())
    return path


def test_attio_spec_refresh_shows_added_and_removed_operations_and_writes(
    serve_document, current_copy, capsys
):
    document = json.loads(current_copy.read_text())
    del document["paths"]["/v2/self"]
    document["paths"]["/v2/widgets"] = {
        "get": {"summary": "List widgets", "responses": {"200": {"description": "ok"}}}
    }
    body = json.dumps(document).encode()
    url = serve_document(body)

    assert refresh.main(["--url", url, "--output", str(current_copy)]) == 0

    out = capsys.readouterr().out
    assert "+ GET /v2/widgets" in out
    assert "- GET /v2/self" in out
    assert hashlib.sha256(body).hexdigest() in out
    assert current_copy.read_bytes() == body


def test_attio_spec_dry_run_writes_nothing(serve_document, current_copy, capsys):
    before = current_copy.read_bytes()
    url = serve_document(before)
    assert refresh.main(["--url", url, "--output", str(current_copy), "--dry-run"]) == 0
    assert "No operation added or removed." in capsys.readouterr().out
    assert current_copy.read_bytes() == before


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"<html>maintenance</html>", 200, "not JSON"),
        (json.dumps({"openapi": "3.0.3", "info": {}, "paths": {}}).encode(), 200, "3.1"),
        (json.dumps({"openapi": "3.1.0", "paths": {}}).encode(), 200, "not valid OpenAPI"),
        (b"{}", 503, "HTTP 503"),
    ],
    ids=["not-json", "openapi-3.0", "invalid-3.1", "http-error"],
)
def test_attio_spec_refuses_a_bad_download_and_keeps_the_copy(
    serve_document, current_copy, capsys, body, status, says
):
    before = current_copy.read_bytes()
    url = serve_document(body, status)
    assert refresh.main(["--url", url, "--output", str(current_copy)]) == 1
    err = capsys.readouterr().err
    assert says in err and "unchanged" in err
    assert len(err.strip().splitlines()) == 1
    assert current_copy.read_bytes() == before


# --- folders ----------------------------------------------------------------------------


def test_a_management_command_makes_the_folders_its_local_files_live_in(tmp_path):
    database = tmp_path / "new" / "db.sqlite3"
    schedule = tmp_path / "beat" / "celerybeat-schedule"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "CELERY_BROKER_URL": "filesystem://localhost/",
        "CELERY_BEAT_SCHEDULE_FILENAME": str(schedule),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }
    env.pop("ATTIO_OPENAPI_PATH", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=REPO,
        env=env,
        check=True,
        timeout=120,
    )
    assert database.is_file()
    assert schedule.parent.is_dir()
    assert (tmp_path / "mail").is_dir()
