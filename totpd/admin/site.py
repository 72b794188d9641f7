"""What every admin handler shares, kept on the app under one typed key."""

import asyncio
from dataclasses import dataclass, field

import jinja2
from aiohttp import web

from totpd.admin.password import AdminPassword
from totpd.admin.sessions import SessionStore
from totpd.services import Services

MAX_UPLOAD_BYTES = 5 << 20
MAX_IMAGE_PIXELS = 16_000_000  # a 5K screenshot is 14.7 megapixels


@dataclass
class Site:
    """The daemon's services plus the admin page's own: password, sessions, templates."""

    services: Services
    password: AdminPassword
    sessions: SessionStore
    templates: jinja2.Environment
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    # Image decoding is CPU- and memory-heavy: one at a time.
    decoding: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))


SITE = web.AppKey("admin_site", Site)
