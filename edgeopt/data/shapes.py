"""The builtin `shapes` data set: a generated, deliberately non-trivial 10-class colour image set.

Each image has one shape of random size, rotation, colour and position on a random background, with
clutter that is not a class shape and pixel noise; seeded, vectorised numpy, no download.
"""

from __future__ import annotations

import os

import numpy as np

SHAPES_SIZE_PX = 32
SHAPES_TRAIN = 6000
SHAPES_VAL = 1000
SHAPES_TEST = 2000
SHAPES_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon", "ellipse", "crescent",
)  # fmt: skip


_CHUNK = 250  # images rendered at once: bounds memory (~60 MB of temporaries)
_SS = 2  # supersampling: render at 2x and average, so edges are anti-aliased like a camera's


def _regular(k: int, radius: float, inner: float | None = None) -> np.ndarray:
    """Vertices of a regular k-gon, or a k-pointed star when ``inner`` is given."""
    if inner is None:
        angles = np.pi / 2 + 2 * np.pi * np.arange(k) / k
        return np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)
    angles = np.pi / 2 + np.pi * np.arange(2 * k) / k
    radii = np.where(np.arange(2 * k) % 2 == 0, radius, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)


_POLYGONS = {  # in shape-local units: every shape spans about [-1, 1]
    "triangle": _regular(3, 1.1),
    "star": _regular(5, 1.15, 0.47),
    "hexagon": _regular(6, 1.0),
}


def _in_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    inside = np.zeros(u.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        inside ^= crosses & (u < (x2 - x1) * (v - y1) / (y2 - y1) + x1)
    return inside


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if kind in _POLYGONS:
        return _in_polygon(u, v, _POLYGONS[kind])
    au, av = np.abs(u), np.abs(v)
    if kind == "square":
        return np.maximum(au, av) <= 0.8
    if kind == "diamond":
        return au / 0.62 + av / 1.15 <= 1.0
    if kind == "cross":
        return ((au <= 0.32) & (av <= 1.0)) | ((av <= 0.32) & (au <= 1.0))
    r2 = u * u + v * v
    if kind == "circle":
        return r2 <= 0.9**2
    if kind == "ring":
        return (r2 <= 1.0) & (r2 >= 0.58**2)
    if kind == "ellipse":
        return (u / 1.15) ** 2 + (v / 0.55) ** 2 <= 1.0
    if kind == "crescent":
        return (r2 <= 1.0) & ((u - 0.5) ** 2 + v * v > 0.82**2)
    raise AssertionError(kind)


def _colours_apart(rng: np.random.Generator, ref: np.ndarray, min_dist: float) -> np.ndarray:
    """Random RGB colours at least ``min_dist`` (Euclidean) from ``ref``, one per row."""
    out = rng.uniform(0, 1, ref.shape)
    for _ in range(20):
        close = np.linalg.norm(out - ref, axis=1) < min_dist
        if not close.any():
            break
        out[close] = rng.uniform(0, 1, (int(close.sum()), 3))
    return out


def _downsample(img: np.ndarray) -> np.ndarray:
    """Average _SS x _SS blocks of (n, H, W, C)."""
    out = img[:, 0::_SS, 0::_SS].copy()
    for i in range(_SS):
        for j in range(_SS):
            if i or j:
                out += img[:, i::_SS, j::_SS]
    return out * np.float32(1.0 / _SS**2)


def generate_shapes(n: int, rng: np.random.Generator, size: int = SHAPES_SIZE_PX) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, size, size, 3) float32 in [0, 1] of the SHAPES_CLASSES, and their int64 labels.

    Each image: a gradient background, small distractor blobs behind the shape, one class shape with random
    size, rotation, stretch, colour and position (it may touch the border), thin distractor lines over it,
    then Gaussian noise of random strength. Deterministic for the generator's state.
    """
    from concurrent.futures import ThreadPoolExecutor

    y = rng.permutation(np.arange(n) % len(SHAPES_CLASSES)).astype(np.int64)
    radius = rng.uniform(5.5, 12.0, n)
    p = {
        "y": y,
        "radius": radius,
        "centre": rng.uniform(0.8 * radius[:, None], size - 0.8 * radius[:, None], (n, 2)),
        "angle": rng.uniform(0, 2 * np.pi, n),
        "stretch": rng.uniform(0.85, 1.15, n),
        "bg1": rng.uniform(0, 1, (n, 3)),
        "bg_dir": rng.uniform(0, 2 * np.pi, n),
        "noise_sd": rng.uniform(0.01, 0.08, n),
        # up to 3 small discs (no class shape) behind the shape, up to 2 thin lines over it
        "blobs": [(rng.random(n) < 0.6, rng.uniform(0, size, (n, 2)), rng.uniform(1.0, 2.6, n)) for _ in range(3)],
        "lines": [(rng.random(n) < 0.5, rng.uniform(0, size, (n, 4)), rng.uniform(0.3, 0.6, n)) for _ in range(2)],
    }
    p["bg2"] = np.clip(p["bg1"] + rng.normal(0, 0.25, (n, 3)), 0, 1)
    fg = _colours_apart(rng, (p["bg1"] + p["bg2"]) / 2, 0.45)
    # palette per image: 0 background (black here, the gradient is added later), blobs, shape, lines
    p["palette"] = np.concatenate(
        [np.zeros((n, 1, 3)), rng.uniform(0, 1, (n, 3, 3)), fg[:, None], rng.uniform(0, 1, (n, 2, 3))], axis=1
    ).astype(np.float32)
    noise_seed = int(rng.integers(2**63))

    images = np.empty((n, size, size, 3), dtype=np.float32)

    def render(start: int) -> None:
        stop = min(n, start + _CHUNK)
        images[start:stop] = _render_chunk(p, start, stop, size)
        noise = np.random.default_rng([noise_seed, start]).standard_normal(images[start:stop].shape, dtype=np.float32)
        noise *= p["noise_sd"][start:stop, None, None, None].astype(np.float32)
        np.clip(images[start:stop] + noise, 0, 1, out=images[start:stop])

    # numpy drops the GIL in its loops, so threads share the work; each chunk's randomness is fixed above
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(render, range(0, n, _CHUNK)))
    return images, y


def _render_chunk(p: dict, lo: int, hi: int, size: int) -> np.ndarray:
    """Images lo..hi of the parameters ``p``, before noise: paint layer indices, look up colours once."""
    m = hi - lo
    coords = ((np.arange(size * _SS) + 0.5) / _SS).astype(np.float32)
    gy, gx = np.meshgrid(coords, coords, indexing="ij")

    def col(a: np.ndarray, rows=slice(None)) -> np.ndarray:
        return a[lo:hi][rows, None, None].astype(np.float32)

    layer = np.zeros((m, size * _SS, size * _SS), dtype=np.uint8)
    for index, (present, c, r) in enumerate(p["blobs"], start=1):
        rows = np.flatnonzero(present[lo:hi])
        disc = (gx - col(c[:, 0], rows)) ** 2 + (gy - col(c[:, 1], rows)) ** 2 <= col(r, rows) ** 2
        layer[rows] = np.where(disc, np.uint8(index), layer[rows])
    shape_index = len(p["blobs"]) + 1
    for label, kind in enumerate(SHAPES_CLASSES):
        rows = np.flatnonzero(p["y"][lo:hi] == label)
        dx, dy = gx - col(p["centre"][:, 0], rows), gy - col(p["centre"][:, 1], rows)
        cos, sin = col(np.cos(p["angle"]), rows), col(np.sin(p["angle"]), rows)
        scale, st = col(p["radius"], rows), col(p["stretch"], rows)
        u = (cos * dx + sin * dy) / (scale * st)
        v = (cos * dy - sin * dx) * st / scale
        layer[rows] = np.where(_shape_mask(kind, u, v), np.uint8(shape_index), layer[rows])
    for index, (present, ends, half_width) in enumerate(p["lines"], start=shape_index + 1):
        rows = np.flatnonzero(present[lo:hi])
        x0, y0 = col(ends[:, 0], rows), col(ends[:, 1], rows)
        sx, sy = col(ends[:, 2], rows) - x0, col(ends[:, 3], rows) - y0
        px, py = gx - x0, gy - y0
        along = np.clip((px * sx + py * sy) / np.maximum(sx * sx + sy * sy, 1e-6), 0, 1)
        stroke = (px - along * sx) ** 2 + (py - along * sy) ** 2 <= col(half_width, rows) ** 2
        layer[rows] = np.where(stroke, np.uint8(index), layer[rows])
    img = _downsample(p["palette"][lo:hi][np.arange(m)[:, None, None], layer])
    # the gradient is smooth at this scale: add it at the output size, weighted by each pixel's background share
    share = _downsample((layer == 0).astype(np.float32)[..., None])
    ly, lx = np.meshgrid(
        np.arange(size, dtype=np.float32) + 0.5, np.arange(size, dtype=np.float32) + 0.5, indexing="ij"
    )
    t = (lx - size / 2) * col(np.cos(p["bg_dir"])) + (ly - size / 2) * col(np.sin(p["bg_dir"]))
    t = np.clip(t / size + 0.5, 0, 1)[..., None]
    bg1, bg2 = col(p["bg1"]), col(p["bg2"])
    img += share * (bg1 + (bg2 - bg1) * t)
    return img
