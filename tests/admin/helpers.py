"""What the admin page tests share: the page in this test's loop, Chromium's switches, sign-in,
QR codes as screenshots and as a camera's video, and the page's Unix socket reached as ssh -L
would reach it."""

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import segno
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from playwright.async_api import BrowserContext, Page

from tests.helpers import REPO
from totpd.admin.site import SITE, Site
from totpd.services import Services

ADMIN_PASSWORD = "correct horse battery staple"
AdminClient = TestClient[web.Request, web.Application]  # a client of the admin page
# Without these, Chromium in a closed network stalls on its background fetches.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "artifacts"
EXAMPLE_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
EXAMPLE_URI = (
    f"otpauth://totp/Example:alice@example.com?secret={EXAMPLE_SEED}&issuer=Example"
    "&algorithm=SHA1&digits=6&period=30"
)


class Clock:
    """A monotonic clock the test moves forward, to age sessions without waiting."""

    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now_s += seconds


@dataclass
class AdminPage:
    """The admin page served in this test's loop, and what the test can reach behind it."""

    server: TestServer
    services: Services
    clock: Clock

    @property
    def site(self) -> Site:
        """The page's shared state (sessions, password)."""
        return self.server.app[SITE]

    def url(self, path: str = "/") -> str:
        """An absolute URL on the page's listener."""
        return str(self.server.make_url(path))

    def accounts(self) -> list[str]:
        """Account names in the roster now."""
        return list(self.services.roster.current().accounts)

    def seed(self, name: str) -> str:
        """The stored seed of an account."""
        return self.services.secrets.seed(name)


BrowserFactory = Callable[..., Awaitable[BrowserContext]]


async def sign_in(page: Page, base_url: str, password: str = ADMIN_PASSWORD) -> int:
    """Open the page, get sent to the sign-in form, sign in; the HTTP status of the answer."""
    await page.goto(base_url)
    await page.fill("#password", password)
    async with page.expect_navigation() as navigation:
        await page.click("button[type=submit]")
    response = await navigation.value
    assert response is not None
    return response.status


def qr_png(path: Path, text: str, scale: int = 8) -> Path:
    """A PNG of a QR code holding `text`, as a screenshot of one would be."""
    segno.make(text, error="m", micro=False).save(str(path), kind="png", scale=scale, border=4)
    return path


def qr_video(path: Path, text: str, width: int = 640, height: int = 480) -> Path:
    """A Y4M video (what Chromium's fake camera plays) of a QR code held up to the camera."""
    qr = qr_png(path.with_suffix(".png"), text, scale=6)
    frame = Image.new("RGB", (width, height), "white")
    with Image.open(qr) as code:
        frame.paste(code.convert("RGB"), ((width - code.width) // 2, (height - code.height) // 2))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    planes = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"".join(b"FRAME\n" + planes for _ in range(10)))
    return path


def wait_for_unix_socket(path: Path, timeout_s: float = 15.0) -> None:
    """Block until something accepts connections on the Unix socket at `path`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as sock:
            if sock.connect_ex(str(path)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {path}")


async def forward_to_unix_socket(path: Path) -> tuple[asyncio.Server, int]:
    """What `ssh -L PORT:/run/totpd/admin.sock host` does on the admin's laptop: a loopback
    TCP port whose every connection goes on to the Unix socket at `path`."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(1 << 16):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unix_reader, unix_writer = await asyncio.open_unix_connection(str(path))
        await asyncio.gather(pipe(reader, unix_writer), pipe(unix_reader, writer))

    server = await asyncio.start_server(connect, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port
