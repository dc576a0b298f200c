"""Transport `sftp-drop`: batches as files on an SFTP server, acknowledgements back from
it; the server's host key pinned, one connection reused, uploads atomic and never doubled.

Reference: docs/transports-sftp.md.
"""

from __future__ import annotations

from typing import Any

from s321.adapters.sftp_drop.hostkeys import HostKeyPin, HostKeyRefused, fingerprint
from s321.adapters.sftp_drop.options import SftpOptions
from s321.adapters.sftp_drop.transport import BadResponse, SftpDropTransport
from s321.hookspecs import hookimpl

__all__ = ["BadResponse", "HostKeyPin", "HostKeyRefused", "SftpDropTransport", "SftpOptions",
           "fingerprint", "register_transports"]


@hookimpl
def register_transports(register: Any) -> None:
    register("sftp-drop", SftpDropTransport, options=SftpOptions,
             description="drop batches on an SFTP server, collect acknowledgements from it")
