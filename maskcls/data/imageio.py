"""Defensive image decoding: every image comes out RGB, upright, and a bad file says what is wrong."""
from __future__ import annotations

import errno
import os
import re
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 60_000_000  # a 384x512 photo is 0.2 MP; anything near this is not a face crop
MIN_SIDE = 16  # smaller than this is no photo of a face (and breaks padding, crops and CAMs)
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG": "png"}


class ImageError(ValueError):
    """An image that cannot be used, with the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


_NOT_FILES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def not_a_file_reason(mode: int) -> str:
    """Words for what a stat mode that is no regular file is."""
    what = next((name for test, name in _NOT_FILES if test(mode)), "not a regular file")
    return f"not a regular file: {what}"


def link_problem(path: str | os.PathLike) -> str | None:
    """Why a path whose stat failed is unusable, when a symbolic link is to blame (dangling or a loop)."""
    try:
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            return None
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (it leads back to itself)"
        if e.errno == errno.ENOENT and os.path.lexists(path):
            return f"a dangling symbolic link (to {os.readlink(path)!r}, which does not exist)"
        return None
    return None


def open_image_file(path: str | os.PathLike):
    """Open `path` for reading only if it is a regular file: a named pipe would block the reader for ever and a
    device could stream without end, so the check is made on the opened descriptor (no race with a swap)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(path, link_problem(path) or "file not found") from None
    except OSError as e:
        raise ImageError(path, link_problem(path) or f"unreadable ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ImageError(path, not_a_file_reason(mode))
    return os.fdopen(fd, "rb")


def sniff(path: str | os.PathLike) -> str | None:
    """The first bytes say whether a file is a JPEG/PNG: None when it is neither (or empty). A path that is no
    readable regular file raises ImageError with the reason."""
    with open_image_file(path) as f:
        head = f.read(4)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def header_problem(path: str | os.PathLike) -> str | None:
    """Why a file cannot be one of our photos, from its type and first bytes (None when it may be)."""
    try:
        kind = sniff(path)
    except ImageError as e:
        return e.reason
    if kind is None:
        return "empty file (0 bytes)" if os.path.getsize(path) == 0 else "not a JPEG or PNG (bad header)"
    return None


def load_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None) -> Image.Image:
    """Decode to an upright RGB PIL image; `size` (w, h) lets JPEG decode at reduced scale first."""
    try:
        with open_image_file(path) as f, warnings.catch_warnings():
            if os.fstat(f.fileno()).st_size == 0:
                raise ImageError(path, "empty file (0 bytes)")
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit comes next
            try:
                img = Image.open(f)
            except Image.DecompressionBombError:
                raise ImageError(path, f"image too large (over {2 * Image.MAX_IMAGE_PIXELS:,} pixels, limit "
                                       f"{MAX_PIXELS:,} pixels)") from None
            check_size(path, img.width, img.height)
            if size is not None and img.format == "JPEG":
                img.draft("RGB", size)  # DCT-domain downscale: much faster decode for small targets
            img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in WIDE_MODES:
            img = to_8_bit(img)
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, rgba)
        return img.convert("RGB")
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ImageError(path, decode_reason(path, e)) from None


def decode_reason(path, e: BaseException) -> str:
    """Why a photo could not be read, in words: an empty file, one cut short, or what the decoder said (without
    the reprs of its file objects)."""
    try:
        size = os.stat(path).st_size
    except OSError:
        size = None
    if size == 0:
        return "cannot decode image: empty file (0 bytes)"
    text = re.sub(r"<_io\.\w+ name=[^>]*>", "the file", str(e))
    if isinstance(e, Image.UnidentifiedImageError) or "cannot identify image file" in text:
        return f"cannot decode image: not an image Pillow can read ({size:,} bytes: another format, or not an image)"
    if "truncated" in text or "broken data stream" in text or "premature end" in text.lower():
        return f"cannot decode image: it is cut short ({size:,} bytes: an interrupted copy?)"
    return f"cannot decode image ({type(e).__name__}: {text})"


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit and 32-bit single-channel images


def to_8_bit(img: Image.Image) -> Image.Image:
    """A 16/32-bit greyscale image scaled to 8 bits: PIL's own convert clips every value above 255 to white."""
    a = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or (img.mode == "I" and a.max(initial=0) > 255) else 255.0
    if img.mode == "F" and a.max(initial=0) <= 1.0:
        top = 1.0
    return Image.fromarray(np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")


def check_size(path: str | os.PathLike, width: int, height: int) -> None:
    """Refuse images too large to be a face photo, or too small to be one."""
    if width * height > MAX_PIXELS:
        raise ImageError(path, f"image too large ({width}x{height}, limit {MAX_PIXELS:,} pixels)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(path, f"image too small ({width}x{height}): expected at least {MIN_SIDE}x{MIN_SIDE} pixels")


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header, checked like a decode would check it."""
    try:
        with warnings.catch_warnings(), open_image_file(path) as f:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                w, h = im.size
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except Image.DecompressionBombError:
        raise ImageError(path, f"image too large (limit {MAX_PIXELS:,} pixels)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(path, decode_reason(path, e)) from None
    check_size(path, w, h)
    return w, h


IMAGE_FOLDERS = ("train/images", "eval/images")  # where a data root's photos live: nothing else is opened for a run


def resolve_image(data_root, path: str | os.PathLike) -> str:
    """The photo a run's table names, as a file inside `data_root`'s image folders: the path itself when it is one
    (links resolved), else the same person folder / file under this data root's train/images (a teammate's run
    names the photos by their own machine's paths). Anything else is refused: a row naming `/home/me/secret.png`
    is never opened, embedded in a report or shown on a page."""
    text = os.fspath(path)
    if not data_root or not os.path.isdir(os.path.join(data_root, "train", "images")):
        raise ImageError(text, f"the run's data root {str(data_root)!r} is not a data root on this machine (no "
                               f"train/images): its photos cannot be shown")
    root = os.path.realpath(data_root)
    folders = [os.path.join(root, f) + os.sep for f in IMAGE_FOLDERS]
    real = os.path.realpath(text)
    if any(real.startswith(f) for f in folders):
        return real
    parts = text.replace("\\", "/").rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] not in ("", ".", "..") and parts[-1] not in ("", ".", ".."):
        local = os.path.realpath(os.path.join(root, "train", "images", parts[-2], parts[-1]))
        if local.startswith(folders[0]) and os.path.lexists(local):
            return local
    raise ImageError(text, f"not a photo of the run's data root {root!r} (only its {' and '.join(IMAGE_FOLDERS)} "
                           f"are opened for a run): not opened")


def thumbnail(path: str | os.PathLike, max_side: int = 160) -> np.ndarray:
    """A small RGB copy for galleries (JPEG draft decoding keeps this cheap)."""
    img = load_rgb(path, (max_side, max_side))
    img.thumbnail((max_side, max_side))
    return np.asarray(img)


# -- preprocessing: decode, center crop, resize (deterministic; this is what the cache stores) ---------------
def load_preprocessed(path: str | os.PathLike, size: tuple[int, int], crop: list | None = None,
                      box: tuple | None = None, background: bool = False) -> np.ndarray:
    """Decode `path`, optionally grey out its background (GrabCut, seeded by `box`), then center-crop `crop` [h, w]
    (source pixels) or cut out `box` (x0, y0, x1, y1 in source pixels: the face crop), and resize to `size`
    (h, w): (H, W, 3) uint8."""
    h, w = size
    src_w, src_h = image_size(path)
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        hint = (max(1, w * src_w // max(1, x1 - x0)), max(1, h * src_h // max(1, y1 - y0)))
    elif crop:
        hint = (max(1, w * src_w // crop[1]), max(1, h * src_h // crop[0]))
    else:
        hint = (w, h)
    img = load_rgb(path, hint)
    sx, sy = img.width / src_w, img.height / src_h  # the decoder may have scaled down (draft mode)
    if background:
        from maskcls.data.background import remove_background
        seed = None if box is None else (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
        img = Image.fromarray(remove_background(np.asarray(img), seed))
    if box is not None:
        img = img.crop((round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)))
    elif crop:
        fy, fx = min(1.0, crop[0] / src_h), min(1.0, crop[1] / src_w)  # crop as a fraction: survives draft scaling
        cw, ch = round(img.width * fx), round(img.height * fy)
        left, top = (img.width - cw) // 2, (img.height - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)
