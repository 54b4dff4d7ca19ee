"""Image files for `convolve predict`, read without Pillow: NPY, binary/ASCII PGM/PPM (P2/P3/P5/P6), and PNG
(8- or 16-bit grayscale, grayscale+alpha, RGB, RGBA; non-interlaced) via zlib and the five PNG row filters.

Every reader returns (array (H, W, C) of float64 in [0, 1] or as stored for float NPY, maxval used for scaling).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


MAX_PIXELS = 1 << 22  # 2048 x 2048: larger images are refused from their header, before any decoding
MAX_FILE_BYTES = 64 << 20


def read_image(path: str | Path, int_max: float = 255.0, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(H, W, C) float64 image scaled to [0, 1]; integer NPY arrays are divided by `int_max`, float ones must be
    finite and in [0, 1] already.

    Images of more than `max_pixels` pixels are refused from their header, before anything is decoded."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not an image file" if path.is_dir() else "not found"
        raise FileNotFoundError(f"predict: image file {path} {what}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"predict: {path} is {size:,} bytes; image files over {MAX_FILE_BYTES:,} bytes are refused")
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    if raw.startswith(b"\x93NUMPY") or suffix == ".npy":
        return _from_npy(path, int_max, max_pixels)
    if raw.startswith(PNG_SIGNATURE):
        return read_png(raw, str(path), max_pixels)
    if raw[:2] in (b"P2", b"P3", b"P5", b"P6"):
        return read_pnm(raw, str(path), max_pixels)
    raise ValueError(f"predict: {path} is not a PNG, PGM/PPM or NPY file (unrecognised header {raw[:8]!r})")


def _check_pixels(height: int, width: int, max_pixels: int, where: str) -> None:
    if height * width > max_pixels:
        raise ValueError(f"predict: {where} declares {width}x{height} pixels, more than the {max_pixels:,} accepted "
                         f"(resize it to the model's input size)")


def _from_npy(path: Path, int_max: float, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    try:  # a memory map reads only the header: the shape is checked before any data is loaded
        mapped = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as e:
        raise ValueError(f"predict: cannot read {path} as a NumPy .npy array ({e})") from e
    if not isinstance(mapped, np.ndarray):
        raise ValueError(f"predict: {path} is an archive, not a single .npy array")
    if mapped.size > 4 * max_pixels:
        raise ValueError(f"predict: {path} holds shape {mapped.shape}, more than {4 * max_pixels:,} values "
                         f"(resize it to the model's input size)")
    arr = np.array(mapped)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
        arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    elif arr.ndim != 3:
        raise ValueError(f"predict: {path} must hold a 2-D (H, W) or 3-D (H, W, C) / (C, H, W) array, "
                         f"got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64) / int_max
    if arr.dtype.kind != "f":
        raise ValueError(f"predict: {path} must hold numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"predict: {path} holds {int((~np.isfinite(arr)).sum())} NaN or inf values")
    low, high = float(arr.min()), float(arr.max())
    if low < 0 or high > 1:
        hint = " (divide by 255, or save it as uint8)" if high <= 255 and low >= 0 else ""
        raise ValueError(f"predict: {path} holds floats in [{low:g}, {high:g}]; float images must be scaled to "
                         f"[0, 1]{hint}")
    return arr.astype(np.float64)


def _pnm_tokens(raw: bytes, count: int, where: str) -> tuple[list[int], int]:
    """The first `count` whitespace-separated header integers (skipping # comments) and the offset after them."""
    tokens: list[int] = []
    i = 2
    while len(tokens) < count:
        while i < len(raw) and raw[i : i + 1].isspace():
            i += 1
        if raw[i : i + 1] == b"#":
            while i < len(raw) and raw[i : i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        j = i
        while j < len(raw) and raw[j : j + 1].isdigit():
            j += 1
        if j == i:
            raise ValueError(f"predict: {where}: malformed PGM/PPM header")
        tokens.append(int(raw[i:j]))
        i = j
    return tokens, i


def read_pnm(raw: bytes, where: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PGM (P2 ASCII, P5 binary) or PPM (P3, P6) as (H, W, 1|3) scaled by the file's maxval."""
    magic = raw[:2].decode()
    channels = 3 if magic in ("P3", "P6") else 1
    (width, height, maxval), offset = _pnm_tokens(raw, 3, where)
    _check_pixels(height, width, max_pixels, where)
    if not 0 < maxval < 65536:
        raise ValueError(f"predict: {where}: PGM/PPM maxval must be in 1..65535, got {maxval}")
    count = width * height * channels
    if magic in ("P2", "P3"):
        tokens = raw[offset:].split(maxsplit=count)  # at most count + 1 pieces, whatever the file holds
        if len(tokens) > count:
            raise ValueError(f"predict: {where}: more than the {count} samples its header declares")
        try:
            values = np.array(tokens, dtype=np.int64)
        except ValueError as e:
            raise ValueError(f"predict: {where}: a PGM/PPM sample is not an integer ({e})") from None
    else:
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
        body = raw[offset + 1 :]  # exactly one whitespace byte after maxval
        values = np.frombuffer(body[: count * dtype.itemsize], dtype=dtype)
    if values.size != count:
        raise ValueError(f"predict: {where}: expected {count} samples for {width}x{height}x{channels}, "
                         f"got {values.size} (truncated file?)")
    return values.reshape(height, width, channels).astype(np.float64) / maxval


def _png_chunks(raw: bytes, where: str) -> tuple[bytes, bytes]:
    """(IHDR payload, concatenated IDAT payloads)."""
    pos, header, idat = len(PNG_SIGNATURE), b"", []
    while pos + 8 <= len(raw):
        (length,), kind = struct.unpack(">I", raw[pos : pos + 4]), raw[pos + 4 : pos + 8]
        data = raw[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
    if len(header) != 13 or not idat:
        raise ValueError(f"predict: {where}: truncated or invalid PNG (missing IHDR or IDAT)")
    return header, b"".join(idat)


def _unfilter(data: np.ndarray, height: int, stride: int, bpp: int, where: str) -> np.ndarray:
    """Undo the per-row PNG filters (None, Sub, Up, Average, Paeth); returns (height, stride) uint8."""
    if data.size != height * (stride + 1):
        raise ValueError(f"predict: {where}: PNG pixel data has {data.size} bytes, expected {height * (stride + 1)}")
    rows = data.reshape(height, stride + 1)
    out = np.zeros((height, stride + bpp), dtype=np.int64)  # bpp zero bytes on the left simplify Sub/Avg/Paeth
    prev = np.zeros(stride + bpp, dtype=np.int64)
    for y in range(height):  # rows depend on the previous row; Average/Paeth go byte by byte
        ftype, line = int(rows[y, 0]), rows[y, 1:].astype(np.int64)
        cur = out[y]
        if ftype in (0, 2):
            cur[bpp:] = (line + (prev[bpp:] if ftype == 2 else 0)) & 0xFF
        elif ftype == 1:  # Sub: a running sum per byte position within a pixel
            cur[bpp:] = np.cumsum(line.reshape(-1, bpp), axis=0).ravel() & 0xFF
        elif ftype in (3, 4):
            for x in range(bpp, stride + bpp):
                a, b, c = cur[x - bpp], prev[x], prev[x - bpp]
                if ftype == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x - bpp] + pred) & 0xFF
        else:
            raise ValueError(f"predict: {where}: invalid PNG filter type {ftype} on row {y}")
        prev = cur
    return out[:, bpp:].astype(np.uint8)


def read_png(raw: bytes, where: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A non-interlaced 8/16-bit grayscale(+alpha)/RGB(A) PNG as (H, W, 1|3) in [0, 1]; alpha is dropped."""
    header, idat = _png_chunks(raw, where)
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", header)
    _check_pixels(height, width, max_pixels, where)
    if ctype not in PNG_CHANNELS or depth not in (8, 16):
        raise ValueError(f"predict: {where}: unsupported PNG (bit depth {depth}, colour type {ctype}); "
                         f"use 8/16-bit grayscale or RGB, or convert to .npy/.pgm")
    if interlace:
        raise ValueError(f"predict: {where}: interlaced PNGs are not supported; save it non-interlaced")
    samples = PNG_CHANNELS[ctype]
    bpp = samples * depth // 8
    expected = height * (width * bpp + 1)
    try:  # inflate at most what the header declares (+1 byte to notice more): a small file cannot explode
        inflater = zlib.decompressobj()
        data = np.frombuffer(inflater.decompress(idat, expected + 1), dtype=np.uint8)
    except zlib.error as e:
        raise ValueError(f"predict: {where}: corrupt PNG data ({e})") from e
    rows = _unfilter(data, height, width * bpp, bpp, where)  # (H, W*bpp)
    if depth == 16:
        pixels = rows.reshape(height, width * samples, 2).astype(np.uint16)
        values = (pixels[..., 0] << 8 | pixels[..., 1]).astype(np.float64) / 65535.0
    else:
        values = rows.astype(np.float64) / 255.0
    img = values.reshape(height, width, samples)
    return img[:, :, :3] if samples == 4 else img[:, :, :1] if samples == 2 else img


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an (H, W) or (H, W, 3) uint8 array as a PNG (filter 0); used by tests and examples."""
    img = np.asarray(image, dtype=np.uint8)
    ctype = 0 if img.ndim == 2 else 2
    h, w = img.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)
    Path(path).write_bytes(PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes()))
                           + chunk(b"IEND", b""))
