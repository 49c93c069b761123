"""A citizen's photo: checked and re-encoded, so only pixels are kept.

The bytes must open as a JPEG, PNG or WebP image in Pillow (the type is what the data is, not
what the upload says), at most `max_bytes` and `MAX_PIXELS` (a decompression bomb is refused before
it is decoded). It is then re-encoded as a new JPEG, at most 1600 px on its long side: EXIF
(position, camera, owner), XMP, ICC and comments are not copied, and the orientation is applied to
the pixels first so the photo stays upright.
"""

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = {"JPEG", "PNG", "WEBP"}
MAX_PIXELS = 40_000_000  # a 40 MP phone photo is fine; a 30,000 x 30,000 PNG of 100 KB is a bomb
MAX_SIDE = 1600


class PhotoRefused(ValueError):
    """Not a photo we take; the message says why (for the citizen)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def clean_photo(data: bytes, max_bytes: int) -> bytes:
    """The photo as a fresh JPEG without metadata, or PhotoRefused."""
    if len(data) > max_bytes:
        raise PhotoRefused("photo_too_large", f"the photo is over {max_bytes // 1_000_000} MB")
    if not data:
        raise PhotoRefused("photo_not_image", "the photo is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in FORMATS:
                    raise PhotoRefused("photo_type", f"a {probe.format} file: send a JPEG, PNG or WebP photo")
                if probe.width * probe.height > MAX_PIXELS:
                    raise PhotoRefused("photo_too_large", f"{probe.width} x {probe.height} pixels is too many")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                image = image.convert("RGB")
                image.thumbnail((MAX_SIDE, MAX_SIDE))
                out = io.BytesIO()
                image.save(out, "JPEG", quality=82, optimize=True)  # no exif=, icc_profile=: none copied
                return out.getvalue()
    except PhotoRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRefused("photo_too_large", "too many pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PhotoRefused("photo_not_image", "the file is not a photo we can read") from exc
