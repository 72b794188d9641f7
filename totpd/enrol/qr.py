"""QR codes in image files (PNG or JPEG screenshots, photos of a screen): their text.

Pillow reads the image, zxing-cpp finds and decodes every QR code in it. Images are capped in
size before decoding, so a hostile file cannot exhaust memory.
"""

import warnings
from pathlib import Path

import zxingcpp
from PIL import Image, UnidentifiedImageError

from totpd.errors import EnrolError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
MAX_FILE_BYTES = 32 << 20
MAX_PIXELS = 50_000_000


def read_qr_texts(path: Path) -> list[str]:
    """The text of each QR code in the image at `path` (in reading order, no duplicates)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise EnrolError(f"{path}: cannot read image: {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise EnrolError(f"{path}: image file is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise EnrolError(f"{path}: image is too large ({image.width}x{image.height})")
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
