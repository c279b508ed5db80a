"""`cartwheel serve --workers N` (`cartwheel.serving`) through the installed console
script: connections spread over the workers, a dead worker is replaced, a broken
configuration stops the supervisor instead of restarting forever."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cartwheel.cli import main
from cartwheel.serving import EXIT_STARTUP_FAILURE

ROOT = Path(__file__).resolve().parents[2]
CARTWHEEL = ROOT / ".venv" / "bin" / "cartwheel"

pytestmark = [pytest.mark.sqlite, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'cartwheel.db'}"
    upgraded = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert upgraded.exit_code == 0, upgraded.output
    environ = {**os.environ, "CARTWHEEL_DATA_DIR": str(data_dir), "DATABASE_URL": url}
    environ.pop("REDIS_URL", None)
    return environ


class Served:
    """A `cartwheel serve` supervisor process and its port."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def workers(self) -> set[int]:
        """The supervisor's worker processes (its multiprocessing resource tracker is
        a child too, and not a worker)."""
        found = set()
        for pid in _children(self.process.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.add(pid)
        return found

    def wait_workers(self, count: int, timeout: float = 60.0) -> set[int]:
        """Wait until `count` workers answer /healthz (all of them: each has its own
        socket, so a connection reaches one of them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                pytest.fail(f"serve exited with {self.process.returncode}: {err[-3000:]}")
            workers = self.workers()
            if len(workers) == count and all(_listening(pid, self.port) for pid in workers):
                response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5)
                if response.status_code == 200:
                    return workers
            time.sleep(0.2)
        pytest.fail(f"{count} workers did not come up in {timeout} s")


@pytest.fixture
def serve(env: dict[str, str]) -> Iterator[Served]:
    port = _free_port()
    process = subprocess.Popen(
        [str(CARTWHEEL), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield Served(process, port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _tcp_table() -> list[tuple[int, int, int, int]]:
    """(local port, remote port, state, inode) of every IPv4 TCP socket."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        rows.append(
            (
                int(local.split(":")[1], 16),
                int(remote.split(":")[1], 16),
                int(state, 16),
                int(inode),
            )
        )
    return rows


TCP_LISTEN = 0x0A


def _listening(pid: int, port: int) -> bool:
    inodes = _socket_inodes(pid)
    return any(
        lport == port and state == TCP_LISTEN and inode in inodes
        for lport, _, state, inode in _tcp_table()
    )


def test_connections_spread_over_the_workers_each_on_its_own_socket(serve: Served) -> None:
    workers = serve.wait_workers(2)
    # Each worker listens on a socket of its own.
    listeners = {pid: _socket_inodes(pid) for pid in workers}
    listening = {
        inode
        for lport, _, state, inode in _tcp_table()
        if lport == serve.port and state == TCP_LISTEN
    }
    assert len(listening) == 2
    assert all(len(inodes & listening) == 1 for inodes in listeners.values())

    # 32 keep-alive connections opened at once (a load balancer's upstream pool): with a
    # shared socket the first worker to wake could take them all; with one socket per
    # worker the kernel hashes each to one of them (fewer than 4 of 32 on one side has
    # a probability of about 3e-6).
    clients = [socket.create_connection(("127.0.0.1", serve.port)) for _ in range(32)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        ports = {client.getsockname()[1] for client in clients}
        owner_of = {inode: pid for pid in workers for inode in _socket_inodes(pid) - listening}
        served_by: dict[int, int] = dict.fromkeys(workers, 0)
        for lport, rport, _, inode in _tcp_table():
            if lport == serve.port and rport in ports:
                served_by[owner_of[inode]] += 1
    finally:
        for client in clients:
            client.close()
    assert sum(served_by.values()) == 32
    assert min(served_by.values()) >= 4, served_by


def test_a_worker_that_dies_is_replaced_and_sigterm_stops_everything(serve: Served) -> None:
    workers = serve.wait_workers(2)
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    replaced = serve.wait_workers(2)
    assert killed not in replaced
    assert replaced - {killed} >= workers - {killed}

    serve.process.send_signal(signal.SIGTERM)
    _, err = serve.process.communicate(timeout=40)
    assert serve.process.returncode == 0
    assert "died (status -9); starting a new one" in err
    assert "Stopping parent process" in err
    for pid in replaced:
        assert not Path(f"/proc/{pid}").exists() or (
            "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


def test_workers_that_cannot_start_stop_the_supervisor(env: dict[str, str]) -> None:
    port = _free_port()
    broken = {**env, "DATABASE_URL": "nosuchdriver://nowhere/db"}
    started = time.monotonic()
    result = subprocess.run(
        [str(CARTWHEEL), "serve", "--port", str(port), "--workers", "2"],
        env=broken,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_STARTUP_FAILURE, result.stderr[-3000:]
    assert "the configuration or the app is broken" in result.stderr
    assert time.monotonic() - started < 30


def test_an_address_in_use_is_a_clear_error(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(CARTWHEEL), "serve", "--port", str(port), "--workers", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use." in result.stderr
