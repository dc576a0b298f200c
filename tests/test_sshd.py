"""The throw-away OpenSSH server the sftp-drop tests rely on: `stop()` is a real outage,
with no session left serving, also one a client opened while the server was stopping
(a transport whose session is cut reconnects at once)."""

import socket

import paramiko
import pytest

import sshd
from sshd import SshServer


@pytest.fixture
def server(ssh_server):
    return ssh_server


def _login(sock: socket.socket, server: SshServer) -> list[str]:
    transport = paramiko.Transport(sock)
    try:
        transport.connect(username=server.user,
                          pkey=paramiko.Ed25519Key.from_private_key_file(str(server.user_key.private)))
        return paramiko.SFTPClient.from_transport(transport).listdir(".")
    finally:
        transport.close()


def test_a_session_serves_until_the_server_stops(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert isinstance(_login(sock, server), list)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        server.stop()
        with pytest.raises((paramiko.SSHException, OSError, EOFError)):
            _login(sock, server)


def test_a_connection_made_while_the_server_stops_is_not_served(server, monkeypatch):
    late: list[socket.socket] = []
    listed = sshd._descendants

    def listing_then_a_client(root: int) -> list[int]:
        found = listed(root)
        # A client connects right after the sessions were listed. A listener still running
        # takes it and forks it a session (its banner comes) that no list has.
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.settimeout(1.0)
        try:
            sock.recv(4, socket.MSG_PEEK)
        except OSError:
            pass  # no banner: the listener does not take connections any more
        sock.settimeout(5.0)
        late.append(sock)
        return found

    monkeypatch.setattr(sshd, "_descendants", listing_then_a_client)
    server.stop()
    monkeypatch.undo()
    with late[0] as sock, pytest.raises((paramiko.SSHException, OSError, EOFError)):
        _login(sock, server)
