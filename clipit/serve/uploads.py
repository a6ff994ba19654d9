"""Request bodies capped in bytes, and uploaded images decoded with a pixel cap.

The byte cap is enforced before the framework parses anything: a declared Content-Length over the cap
is refused at once, and a body sent without one (chunked) is counted as it arrives and refused as
soon as it passes the cap, so an upload can never fill memory or disk. The pixel cap is checked from
the image header before any pixel is decoded (the same decode as training and eval), so a
decompression bomb costs a few bytes of reading and gets a 413, not an out-of-memory server.
"""

from __future__ import annotations

import io
import json
import warnings

from PIL import Image

from clipit.data.decode import decode_image
from clipit.errors import DataError


class UploadTooLarge(Exception):
    """An upload over the server's byte or pixel cap (answered 413)."""


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`, declared or counted."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _too_large(send, self.max_bytes)
        body, more = bytearray(), True
        while more:  # read it all first (at most max_bytes): a handler never sees a partial upload
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _too_large(send, self.max_bytes)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        return await self.app(scope, replay, send)


async def _too_large(send, max_bytes: int) -> None:
    payload = json.dumps({"detail": f"request body over the {max_bytes:,}-byte limit"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def open_upload(data: bytes, *, max_pixels: int, name: str = "uploaded image") -> Image.Image:
    """An uploaded file as an RGB image; UploadTooLarge over `max_pixels`, DataError if unreadable."""
    if not data:
        raise DataError(f"{name} is empty", "upload an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:  # reads the header only
                width, height = header.size
    except Image.DecompressionBombError:  # over Pillow's own (larger) limit, refused from the header too
        raise UploadTooLarge(
            f"{name}: over the {max_pixels:,}-pixel limit (decompression bomb guard)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{name}: not a readable image ({exc})", "upload a JPEG, PNG or WebP file") from None
    if width * height > max_pixels:
        raise UploadTooLarge(f"{name}: {width}x{height} is over the {max_pixels:,}-pixel limit")
    return Image.fromarray(decode_image(data, max_pixels=max_pixels, name=name))
