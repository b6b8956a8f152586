"""`python -m attio_portal.serve`: uvicorn with Nagle's algorithm off in every worker."""

import socket
import sys

import httpx

from .faults.harness import BIN, free_port, log_file, spawn, stop, wait_until_serving


def serve(command: list[str], port: int, log, workers: int):
    return spawn(
        [*command, "tests.nodelay_probe:app", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", str(workers), "--lifespan", "off", "--no-access-log"],
        None,
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


def test_the_listening_socket_is_the_one_uvicorn_bound(tmp_path):
    from attio_portal.serve import TcpListenerConfig

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
