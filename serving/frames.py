"""The messages between the front process and its workers (``audiencefit.serving.dispatch``,
``audiencefit.serving.workers``).

A message is a JSON header and a byte body, each preceded by its length (4 bytes, big endian), over a Unix socket
the front owns. Requests carry what an ASGI ``http`` scope needs (method, path, query, headers, client); responses
carry the status and headers the app sent. JSON, not pickle: a frame is data, never code.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

_LEN = struct.Struct(">I")
MAX_FRAME = 64 << 20  # a response of k=100 with explanations is well under 1 MiB


async def write_frame(writer: asyncio.StreamWriter, header: dict[str, Any], body: bytes = b"") -> None:
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    writer.write(_LEN.pack(len(head)) + head + _LEN.pack(len(body)) + body)
    await writer.drain()


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes] | None:
    """The next message, or None when the other side closed the connection."""
    try:
        head = await reader.readexactly(_read_len(await reader.readexactly(_LEN.size)))
        body = await reader.readexactly(_read_len(await reader.readexactly(_LEN.size)))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    header = json.loads(head)
    if not isinstance(header, dict):
        raise ValueError("frame header is not a JSON object")
    return header, body


def _read_len(raw: bytes) -> int:
    (n,) = _LEN.unpack(raw)
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes exceeds {MAX_FRAME}")
    return int(n)


def encode_headers(headers: list[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers]


def decode_headers(headers: list[list[str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
