"""The messages between the caller and its fork server: a header, a pickle, and file descriptors.

::

    | payload length u64 | fd count u32 |  (the fds ride on the header, SCM_RIGHTS)  | payload (a pickle) |

A request is ``(op, payload)``: ``PRELOAD`` (modules and ``sys.path``) or
``FORK`` (a job's pickle, the caller's cwd and environment); an answer is
``("ok", value)`` or ``("error", text)``.  A worker's exit status comes
back on its own pipe, ``STATUS``.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["FORK", "PRELOAD", "STATUS", "receive", "send"]

_HEADER = struct.Struct("<QI")  # payload length, number of fds
STATUS = struct.Struct("<i")
_MAX_FDS = 256
PRELOAD, FORK = "preload", "fork"


def send(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    header = _HEADER.pack(len(data), len(fds))
    socket.send_fds(sock, [header], fds) if fds else sock.sendall(header)
    sock.sendall(data)


def receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, _MAX_FDS, socket.MSG_WAITALL)
    if len(header) < _HEADER.size:
        raise EOFError("the other end closed")
    length, count = _HEADER.unpack(header)
    if len(fds) != count:
        raise OSError(f"expected {count} file descriptors, got {len(fds)}")
    chunks, left = [], length
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks), fds
