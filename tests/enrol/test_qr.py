"""QR images in (real decoding of PNG and JPEG images drawn with segno), QR codes out."""

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pyotp
import pytest
import segno
import zxingcpp
from PIL import Image, ImageDraw

from totpd.enrol import parse_image, parse_images, parse_text
from totpd.enrol.generate import generate, new_secret, qr_text, write_qr
from totpd.enrol.uri import format_uri
from totpd.errors import EnrolError
from totpd.otp import Account, totp_at

SECRET = "HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"
GITHUB_URI = f"otpauth://totp/GitHub:alice%40example.com?secret={SECRET}&issuer=GitHub"
TWO_ACCOUNTS = (
    "otpauth-migration://offline?data="
    "CkMKFD3GyqSCSm0oh2eyMx4gtDFmy4XZEhxBQ01FIENvOmpvaG4uZG9lQGV4YW1wbGUuY29tGgdBQ01FIENvIAEoATAC"
    "CjUKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZSABKAEwAhABGAEgACjn4Pv4Ag=="
)


def qr_png(path: Path, text: str, scale: int = 6) -> Path:
    """A PNG of a QR code of `text`, as a phone or a web page would show it."""
    segno.make(text, error="m").save(str(path), kind="png", scale=scale, border=4)
    return path


def screenshot(path: Path, text: str, quality: int = 80) -> Path:
    """A JPEG 'screenshot': the QR code off-centre on a busy page, lossy-compressed."""
    page = Image.new("RGB", (900, 1400), "#f4f4f8")
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 900, 120), fill="#1a73e8")
    for line in range(12):
        draw.text((60, 180 + 40 * line), "Scan this code with your authenticator app", fill="black")
    code = Image.open(io.BytesIO(_png_bytes(text))).convert("RGB")
    page.paste(code, (230, 720))
    page.save(path, "JPEG", quality=quality)
    return path


def _png_bytes(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=5, border=4)
    return out.getvalue()


def test_a_png_qr_code_of_an_otpauth_uri(tmp_path: Path) -> None:
    (found,) = parse_image(qr_png(tmp_path / "github.png", GITHUB_URI))
    assert (found.account.name, found.account.label, found.secret) == ("github", "GitHub", SECRET)


def test_a_jpeg_screenshot_with_the_code_somewhere_on_the_page(tmp_path: Path) -> None:
    (found,) = parse_image(screenshot(tmp_path / "shot.jpg", GITHUB_URI))
    assert found.secret == SECRET


def test_a_qr_code_of_a_google_authenticator_export(tmp_path: Path) -> None:
    found = parse_image(qr_png(tmp_path / "export.png", TWO_ACCOUNTS))
    assert [e.account.name for e in found] == ["acme-co", "example"]
    assert found[1].secret == "JBSWY3DPEHPK3PXP"


def test_an_export_split_over_two_images_is_named_as_one_import(tmp_path: Path) -> None:
    first = qr_png(tmp_path / "1.png", GITHUB_URI)
    second = qr_png(tmp_path / "2.png", GITHUB_URI.replace("alice", "bob"))
    assert [e.account.name for e in parse_images([first, second])] == [
        "github-alice",
        "github-bob",
    ]


def test_an_image_without_a_qr_code(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    image = Image.new("L", (400, 300))
    ImageDraw.Draw(image).ellipse((50, 50, 350, 250), fill=200)
    image.save(path)
    with pytest.raises(EnrolError, match=f"{path}: no QR code found"):
        parse_image(path)


def test_a_qr_code_holding_something_else(tmp_path: Path) -> None:
    path = qr_png(tmp_path / "wifi.png", "WIFI:S:home;T:WPA;P:secret-password;;")
    with pytest.raises(EnrolError, match="something other than an otpauth") as caught:
        parse_image(path)
    assert "secret-password" not in str(caught.value)


def test_a_qr_code_with_a_bad_uri_names_the_file(tmp_path: Path) -> None:
    path = qr_png(tmp_path / "bad.png", GITHUB_URI + "&digits=12")
    with pytest.raises(EnrolError, match=f"{path}: otpauth URI: digits must be 6, 7 or 8"):
        parse_image(path)


def test_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text(GITHUB_URI)
    with pytest.raises(EnrolError, match="not an image totpd can read") as caught:
        parse_image(path)
    assert SECRET not in str(caught.value)


def test_a_truncated_png(tmp_path: Path) -> None:
    path = qr_png(tmp_path / "cut.png", GITHUB_URI)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(EnrolError, match="damaged image"):
        parse_image(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EnrolError, match="cannot read image"):
        parse_image(tmp_path / "nowhere.png")


def test_an_image_too_large_to_decode_safely(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000), 1).save(path)  # tiny file, 100 megapixels
    assert path.stat().st_size < 1 << 20
    with pytest.raises(EnrolError, match="too large"):
        parse_image(path)


# generating ------------------------------------------------------------------------------
def test_new_secrets_are_160_bits_and_never_repeat() -> None:
    fresh = {new_secret() for _ in range(50)}
    assert len(fresh) == 50
    assert all(len(s) == 32 and pyotp.TOTP(s).byte_secret().__len__() == 20 for s in fresh)


def test_a_generated_png_scans_back_to_the_same_account(tmp_path: Path) -> None:
    enrolment = generate(Account("acme", "Acme", issuer="Acme"))
    path = tmp_path / "acme.png"
    write_qr(format_uri(enrolment), path)
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the secret
    (scanned,) = parse_image(path)
    assert scanned.secret == enrolment.secret
    assert scanned.account.issuer == "Acme"
    assert totp_at(scanned.account, scanned.secret, 1e9) == pyotp.TOTP(enrolment.secret).at(1e9)


def test_a_generated_svg_is_a_private_svg_document(tmp_path: Path) -> None:
    enrolment = generate(Account("acme", "Acme"))
    path = tmp_path / "acme.svg"
    write_qr(format_uri(enrolment), path)
    assert path.stat().st_mode & 0o777 == 0o600
    root = ET.fromstring(path.read_bytes())  # noqa: S314 - our own file
    assert root.tag.endswith("svg")
    assert root.find(".//{http://www.w3.org/2000/svg}path") is not None


def test_only_png_and_svg_are_written(tmp_path: Path) -> None:
    with pytest.raises(EnrolError, match=r"must end in \.png or \.svg"):
        write_qr("otpauth://totp/x?secret=" + SECRET, tmp_path / "qr.gif")


def terminal_to_image(text: str) -> Image.Image:
    """Rasterise a block-character QR code: each character is two pixels, one above the other."""
    halves = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}
    rows = [line for line in text.splitlines() if line]
    image = Image.new("L", (len(rows[0]), 2 * len(rows)))
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            top, bottom = halves[char]
            image.putpixel((x, 2 * y), 255 * top)
            image.putpixel((x, 2 * y + 1), 255 * bottom)
    return image.resize((image.width * 8, image.height * 8), Image.Resampling.NEAREST)


def test_the_terminal_qr_code_scans_to_the_uri() -> None:
    uri = format_uri(generate(Account("acme", "Acme", issuer="Acme")))
    (barcode,) = zxingcpp.read_barcodes(terminal_to_image(qr_text(uri)))
    assert barcode.text == uri
    assert parse_text(barcode.text)[0].account.issuer == "Acme"
