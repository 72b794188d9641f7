"""Reading form posts within hard limits, and the CSRF check every form passes.

Plain forms are small and read whole. An image upload is streamed part by part and refused
as soon as it passes the size cap, before anything is decoded or stored.
"""

from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from multidict import MultiDict, MultiDictProxy

from totpd.admin.sessions import Session
from totpd.admin.site import SITE
from totpd.errors import AdminRefused

MAX_FORM_BYTES = 64 << 10  # a pasted Google Authenticator export is a few KiB
MAX_PARTS = 32
CHUNK_BYTES = 64 << 10
IMAGE_FIELD = "image"

STALE_FORM = (
    "This form's security token is missing or wrong (a stale page, or a request from"
    " another site). Nothing was changed: reload the page and try again."
)


@dataclass(frozen=True)
class Upload:
    """An upload form: its text fields and the image's bytes (empty when none was chosen)."""

    fields: MultiDict[str]
    image: bytes


def check_csrf(session: Session, token: object) -> None:
    """Refuse (403) a form whose synchronizer token is not this session's."""
    if not isinstance(token, str) or not session.csrf_matches(token):
        raise AdminRefused(403, STALE_FORM)


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """The fields of a URL-encoded form post (files are not accepted here)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise AdminRefused(400, "Expected a form post.")
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise AdminRefused(413, "That form is too large.")
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise AdminRefused(413, "That form is too large.") from None
    except ValueError:
        raise AdminRefused(400, "That form could not be read.") from None
    fields: MultiDict[str] = MultiDict()
    for key, value in form.items():
        if isinstance(value, str):
            fields.add(key, value)
    return MultiDictProxy(fields)


def _too_large(limit_bytes: int) -> AdminRefused:
    return AdminRefused(
        413, f"That file is too large: the limit is {limit_bytes >> 20} MB. Nothing was stored."
    )


async def _read_part(part: BodyPartReader, limit_bytes: int, too_large: AdminRefused) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(CHUNK_BYTES):
        size += len(chunk)
        if size > limit_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: web.Request) -> Upload:
    """The fields and the image of a multipart upload, refused (413) past the size cap."""
    limit_bytes = request.app[SITE].max_upload_bytes
    if request.content_type != "multipart/form-data":
        raise AdminRefused(400, "Expected a file upload.")
    if request.content_length is not None and request.content_length > limit_bytes + MAX_FORM_BYTES:
        raise _too_large(limit_bytes)
    try:
        reader = await request.multipart()
        fields: MultiDict[str] = MultiDict()
        image = b""
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                return Upload(fields, image)
            if not isinstance(part, BodyPartReader) or not part.name:
                raise AdminRefused(400, "That upload could not be read.")
            if part.name == IMAGE_FIELD:
                image = await _read_part(part, limit_bytes, _too_large(limit_bytes))
            else:
                raw = await _read_part(
                    part, MAX_FORM_BYTES, AdminRefused(413, "A field is too long.")
                )
                fields.add(part.name, raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        # aiohttp reports malformed multipart bodies with these.
        raise AdminRefused(400, "That upload could not be read.") from None
    raise AdminRefused(400, "That upload has too many fields.")
