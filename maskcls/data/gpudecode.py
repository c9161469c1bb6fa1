"""Batched JPEG decoding with torchvision (nvJPEG on CUDA), then the same center crop and resize as the CPU path.

On a GPU server, decoding is what a cold decoded-image cache or a cold eval prediction waits for: nvJPEG
decodes a batch of JPEGs on the device. PNGs, and any file the batched decoder refuses, go through the CPU
path (`load_preprocessed`), so every image gets decoded or a reason. Pixels match the CPU path within JPEG
decoder rounding and resampling differences (the CPU path downscales in the DCT domain first).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from maskcls.data.imageio import ImageError, check_size, load_preprocessed, open_image_file

JPEG_MAGIC = b"\xff\xd8\xff"


def _read(path: str) -> bytes | None:
    try:
        with open_image_file(path) as f:
            return f.read()
    except (OSError, ImageError):
        return None


def _crop_resize(imgs: torch.Tensor, size: tuple[int, int], crop: list | None) -> torch.Tensor:
    """(B, 3, h, w) uint8 on any device -> (B, H, W, 3) uint8: center crop (source pixels), antialiased bilinear
    resize; one call for a batch of same-sized images (a phone's photos all share one size)."""
    src_h, src_w = imgs.shape[-2:]
    if crop:
        ch, cw = min(src_h, crop[0]), min(src_w, crop[1])
        top, left = (src_h - ch) // 2, (src_w - cw) // 2
        imgs = imgs[..., top:top + ch, left:left + cw]
    x = imgs.float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _place(decoded: dict[int, torch.Tensor], paths: list[str], size, crop, *, out: np.ndarray, start: int,
           failed: list) -> None:
    """Size-check the decoded images, then crop/resize them grouped by source size: one resize and one
    device-to-host copy per group instead of one per image."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in decoded.items():
        try:
            check_size(paths[i], img.shape[2], img.shape[1])
        except ImageError as e:
            failed.append((start + i, e.reason))
            continue
        groups.setdefault(tuple(img.shape[1:]), []).append(i)
    for rows in groups.values():
        for k in range(0, len(rows), 128):  # bounded float memory per resize
            part = rows[k:k + 128]
            out[[start + i for i in part]] = _crop_resize(torch.stack([decoded[i] for i in part]), size, crop).cpu().numpy()


def decode_paths(paths: list[str], size: tuple[int, int], crop: list | None, device: torch.device | str, *,
                 out: np.ndarray | None = None, start: int = 0) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode `paths` into `out[start:start + n]` ((N, H, W, 3) uint8; made when None) with JPEGs decoded in one
    batch on `device`; returns (out, [(row, reason)] of images that could not be used)."""
    from torchvision.io import ImageReadMode, decode_jpeg
    device = torch.device(device)
    n = len(paths)
    if out is None:
        out = np.zeros((n, size[0], size[1], 3), np.uint8)
        start = 0
    failed: list[tuple[int, str]] = []
    with ThreadPoolExecutor(8) as pool:  # file reads release the GIL; a cold page cache is I/O bound
        datas = list(pool.map(_read, paths))
    jpeg_rows = [i for i, d in enumerate(datas) if d is not None and d.startswith(JPEG_MAGIC)]
    is_jpeg = set(jpeg_rows)
    cpu_rows = [i for i in range(n) if i not in is_jpeg]
    decoded: dict[int, torch.Tensor] = {}
    if jpeg_rows:
        tensors = [torch.frombuffer(bytearray(datas[i]), dtype=torch.uint8) for i in jpeg_rows]
        try:
            images = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
            decoded = dict(zip(jpeg_rows, images))
        except RuntimeError:  # one bad file fails the whole batch: decode one by one, the rest on the CPU
            for i, t in zip(jpeg_rows, tensors):
                try:
                    decoded[i] = decode_jpeg(t, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
                except RuntimeError:
                    cpu_rows.append(i)
    _place(decoded, paths, size, crop, out=out, start=start, failed=failed)
    for i in sorted(cpu_rows):
        try:
            out[start + i] = load_preprocessed(paths[i], size, crop)
        except ImageError as e:
            failed.append((start + i, e.reason))
        except Exception as e:  # a decoder bug must not kill the whole build
            failed.append((start + i, f"cannot decode image ({type(e).__name__}: {e})"))
    return out, sorted(failed)


def gpu_decode_available(device: torch.device | str | None) -> bool:
    """Batched decoding on the device needs CUDA (torchvision's CUDA builds carry nvJPEG)."""
    return device is not None and torch.device(device).type == "cuda"
