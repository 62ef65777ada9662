"""Why an RTSP URL cannot be opened, in words: one DESCRIBE request, its status line.

OpenCV only says "not opened". After a failed open the source asks the server
itself, so the error says 404 Not Found (wrong path), 401 Unauthorized (credentials)
or connection refused. The request line never carries the credentials (they go in
an Authorization header) and nothing here returns or logs them.
"""

from __future__ import annotations

import base64
import socket
from urllib.parse import unquote, urlsplit

_HINTS = {
    401: "wrong or missing credentials in the URL",
    403: "the credentials may not play this stream",
    404: "no stream at this path",
    454: "no stream at this path",
}


def rtsp_failure(url: str, timeout_s: float) -> str | None:
    """What the server at `url` answers to DESCRIBE, when that explains a failed open;
    None when it answers 200 (the stream itself is the problem) or the URL is not RTSP."""
    try:
        parts = urlsplit(url)
        port = parts.port or 554
    except ValueError:
        return None
    if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
        return None
    target = f"{parts.scheme}://{parts.hostname}:{port}{parts.path or '/'}"
    lines = [f"DESCRIBE {target} RTSP/1.0", "CSeq: 1", "Accept: application/sdp",
             "User-Agent: edge-agent"]
    if parts.username:
        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append("Authorization: Basic " + base64.b64encode(raw).decode())
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s) as sock:
            sock.sendall(request)
            status = sock.recv(1024).split(b"\r\n", 1)[0].decode("latin-1")
    except ConnectionRefusedError:
        return f"connection refused by {parts.hostname}:{port} (no RTSP server there)"
    except TimeoutError:
        return f"no answer from {parts.hostname}:{port} within {timeout_s * 1000:.0f} ms"
    except OSError as exc:
        return f"cannot reach {parts.hostname}:{port}: {exc.strerror or exc}"
    fields = status.split(" ", 2)
    if len(fields) < 2 or not fields[1].isdigit():
        return f"{parts.hostname}:{port} does not speak RTSP (answered {status[:40]!r})"
    code = int(fields[1])
    if code == 200:
        return None
    hint = _HINTS.get(code)
    return f"the server answered {code} {fields[2] if len(fields) > 2 else ''}".rstrip() + (
        f" ({hint})" if hint else "")
