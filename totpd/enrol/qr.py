"""QR codes in image files (PNG or JPEG screenshots, photos of a screen): their text.

Pillow reads the image, zxing-cpp finds and decodes every QR code in it. Images are capped in
size from their header before decoding, so a hostile file cannot exhaust memory.
"""

import struct
import warnings
from pathlib import Path

import zxingcpp
from PIL import Image, UnidentifiedImageError

from totpd.errors import EnrolError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
MAX_FILE_BYTES = 32 << 20
MAX_PIXELS = 50_000_000
HEADER_PREFIX_BYTES = 16  # what Image.open shows each format's `accept` test


def header_size(path: Path) -> tuple[int, int] | None:
    """An image's width and height from its header, no pixel decoded; None if it is none of
    FORMATS.

    Image.open refuses a decompression bomb before it says how large the image is; its format
    plugins, called as Image.open calls them, read the header and nothing more.
    """
    Image.init()
    with path.open("rb") as file:
        prefix = file.read(HEADER_PREFIX_BYTES)
        for name in FORMATS:
            factory, accept = Image.OPEN[name]
            accepted = accept(prefix) if accept is not None else True
            if isinstance(accepted, str) or not accepted:  # a str is Pillow's "not quite"
                continue
            file.seek(0)
            try:
                with factory(file, str(path)) as image:
                    return image.size
            except (SyntaxError, IndexError, TypeError, ValueError, struct.error, OSError):
                continue  # damaged, or another format after all
    return None


def check_size(path: Path, max_pixels: int) -> None:
    """Refuse an image of more than `max_pixels`, naming its real size, before decoding it."""
    try:
        size = header_size(path)
    except OSError:
        return  # unreadable: whoever opens it next says so in their own words
    if size is not None and size[0] * size[1] > max_pixels:
        raise EnrolError(
            f"the image is too large to decode ({size[0]}x{size[1]} pixels; the limit is"
            f" {max_pixels // 1_000_000} megapixels): crop it to the QR code"
        )


def read_qr_texts(path: Path) -> list[str]:
    """The text of each QR code in the image at `path` (in reading order, no duplicates)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise EnrolError(f"{path}: cannot read image: {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise EnrolError(f"{path}: image file is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        check_size(path, MAX_PIXELS)
    except EnrolError as exc:
        raise EnrolError(f"{path}: {exc}") from None
    try:
        # Pillow's own bomb guard stays on, a second line behind check_size.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                grey = image.convert("L")
    except UnidentifiedImageError:
        raise EnrolError(f"{path}: not an image totpd can read (PNG, JPEG, ...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise EnrolError(f"{path}: image is too large") from None
    except (OSError, ValueError, SyntaxError) as exc:
        # Pillow reports damaged files with these; the type is enough.
        raise EnrolError(f"{path}: damaged image ({type(exc).__name__})") from None
    barcodes = zxingcpp.read_barcodes(
        grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    texts = list(dict.fromkeys(b.text for b in barcodes if b.text))
    if not texts:
        raise EnrolError(f"{path}: no QR code found in the image")
    return texts
