"""`python -m attio_portal.serve`: uvicorn with Nagle's algorithm off in every worker."""

import json
import os
import socket
import sys
import time

import httpx
import pytest

from .faults.harness import BIN, free_port, log_file, spawn, stop, wait_until_serving


def serve(command: list[str], port: int, log, workers: int, env: dict | None = None):
    return spawn(
        [*command, "tests.nodelay_probe:app", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", str(workers), "--lifespan", "off", "--no-access-log"],
        env,
        log,
    )


def nodelay_seen_by_the_workers(command: list[str], tmp_path, workers: int = 2) -> set[bool]:
    """TCP_NODELAY on the connections the workers accepted, as each worker reads it."""
    port = free_port()
    with log_file(tmp_path / "serve.log") as log:
        process = serve(command, port, log, workers)
        try:
            wait_until_serving(f"http://127.0.0.1:{port}", process, path="/")
            seen: set[bool] = set()
            for _ in range(10):  # new connections, so both workers answer some
                seen.update(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["nodelay"])
            return seen
        finally:
            stop(process)


def test_several_workers_answer_with_nagle_off(tmp_path):
    assert nodelay_seen_by_the_workers([sys.executable, "-m", "attio_portal.serve"], tmp_path) == {
        True
    }


def test_a_single_process_answers_with_nagle_off(tmp_path):
    command = [sys.executable, "-m", "attio_portal.serve"]
    assert nodelay_seen_by_the_workers(command, tmp_path, workers=1) == {True}


def test_plain_uvicorn_workers_still_leave_nagle_on(tmp_path):
    # Why attio_portal.serve exists (uvicorn issue #3149). If this fails, uvicorn binds
    # its workers' socket as TCP itself, and the launcher can go.
    assert nodelay_seen_by_the_workers([str(BIN / "uvicorn")], tmp_path) == {False}


def test_the_listening_socket_is_the_one_uvicorn_bound(tmp_path, monkeypatch):
    from attio_portal.serve import TcpListenerConfig

    monkeypatch.setenv("PORTAL_WORKERS", "1")  # the config sets it: undone after the test

    config = TcpListenerConfig(app="tests.nodelay_probe:app", host="127.0.0.1", port=0)
    sock = config.bind_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.get_inheritable()  # the workers receive it
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        sock.listen()
        with socket.create_connection(sock.getsockname(), timeout=5):
            accepted, _ = sock.accept()
            assert accepted.proto == socket.IPPROTO_TCP
            accepted.close()
    finally:
        sock.close()


def pids_of_kept_alive_connections(command: list[str], tmp_path, connections: int = 64) -> list:
    """The worker pid that answers each of `connections` connections opened at once."""
    port = free_port()
    with log_file(tmp_path / "serve.log") as log:
        process = serve(command, port, log, workers=2)
        try:
            wait_until_serving(f"http://127.0.0.1:{port}", process, path="/")
            # Until both workers answer: one still starting takes no connections yet.
            deadline = time.monotonic() + 20
            seen = set()
            while len(seen) < 2 and time.monotonic() < deadline:
                seen.add(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["pid"])
            sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
            try:
                pids = []
                for sock in sockets:  # opened together, like a client's connection pool
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                for sock in sockets:
                    answer = b""
                    while b"}" not in answer:
                        answer += sock.recv(65536)
                    body = answer[answer.index(b"{") : answer.rindex(b"}") + 1]  # maybe chunked
                    pids.append(json.loads(body)["pid"])
                return pids
            finally:
                for sock in sockets:
                    sock.close()
        finally:
            stop(process)


def test_connections_opened_at_once_are_shared_by_the_workers(tmp_path):
    command = [sys.executable, "-m", "attio_portal.serve"]
    pids = pids_of_kept_alive_connections(command, tmp_path)
    # Spread by the kernel (SO_REUSEPORT): each worker gets its share. With an even spread
    # of 64, a worker gets fewer than 16 about once in 10,000 runs; plain uvicorn's
    # workers, accepting from one socket, split them about 13 to 51 here.
    counts = sorted(pids.count(pid) for pid in set(pids))
    assert len(counts) == 2 and counts[0] >= 16, counts


@pytest.mark.parametrize("given, told", [(None, "2"), ("6", "6")])
def test_the_workers_are_told_how_many_they_are(tmp_path, given, told):
    """PORTAL_WORKERS, which the bulk tools' pace is shared by (tools/bulk.py): the
    launcher's --workers, unless it is set for the workers of several machines."""
    env = {k: v for k, v in os.environ.items() if k != "PORTAL_WORKERS"}
    if given is not None:
        env["PORTAL_WORKERS"] = given
    port = free_port()
    with log_file(tmp_path / "serve.log") as log:
        process = serve([sys.executable, "-m", "attio_portal.serve"], port, log, 2, env=env)
        try:
            wait_until_serving(f"http://127.0.0.1:{port}", process, path="/")
            answers = [httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json() for _ in range(10)]
        finally:
            stop(process)

    assert {a["workers"] for a in answers} == {told}
