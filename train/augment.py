"""Small random shifts and rotations of uint8 MNIST images (training-time augmentation).

Pure NumPy: ``augment_images(images, rng, ...)`` returns new uint8 images of the same shape,
drawn from the generator ``rng`` only, so a seeded generator gives the same images every time.
Each image is rotated about its centre by an angle drawn uniformly from
``[-max_rotation, max_rotation]`` degrees and shifted by ``(dy, dx)`` drawn uniformly from
``[-max_shift, max_shift]`` pixels, with bilinear interpolation; pixels that come from outside
the frame are 0 (MNIST background). The models rescale raw pixels themselves, so the output
keeps the raw 0..255 uint8 form.
"""

from __future__ import annotations

import numpy as np

__all__ = ["augment_images", "transform_images"]

_CHUNK = 4096


def _check_images(images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")


def transform_images(images: np.ndarray, angles_deg: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Rotate and shift each image (bilinear, zero outside the frame).

    Args:
        images: ``(N, H, W)`` uint8.
        angles_deg: ``(N,)`` rotation angles in degrees (positive: clockwise on screen, rows grow downward).
        shifts: ``(N, 2)`` shifts ``(dy, dx)`` in pixels (positive: down, right).

    Returns:
        ``(N, H, W)`` uint8 images; angle 0 and shift 0 return the input unchanged.

    Raises:
        ValueError: wrong dtype or shapes.
    """
    _check_images(images)
    count, height, width = images.shape
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    shifts = np.asarray(shifts, dtype=np.float64)
    if angles_deg.shape != (count,) or shifts.shape != (count, 2):
        raise ValueError(f"expected angles ({count},) and shifts ({count}, 2), got {angles_deg.shape} and {shifts.shape}")
    out = np.empty_like(images)
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    for start in range(0, count, _CHUNK):
        stop = min(count, start + _CHUNK)
        out[start:stop] = _transform_chunk(
            images[start:stop], np.deg2rad(angles_deg[start:stop]), shifts[start:stop], rows - cy, cols - cx, (cy, cx)
        )
    return out


def _transform_chunk(
    images: np.ndarray,
    angles: np.ndarray,
    shifts: np.ndarray,
    dy: np.ndarray,
    dx: np.ndarray,
    centre: tuple[float, float],
) -> np.ndarray:
    """Inverse-map every output pixel to its source position and sample bilinearly."""
    count, height, width = images.shape
    cos = np.cos(angles)[:, None, None]
    sin = np.sin(angles)[:, None, None]
    # Output pixel p = R (s - c) + c + t  =>  source s = R^T (p - c - t) + c.
    ry = dy[None] - shifts[:, 0, None, None]
    rx = dx[None] - shifts[:, 1, None, None]
    src_y = cos * ry - sin * rx + centre[0]
    src_x = sin * ry + cos * rx + centre[1]
    # A one-pixel zero border makes every out-of-frame sample read 0.
    padded = np.zeros((count, height + 2, width + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = images
    src_y = np.clip(src_y + 1.0, 0.0, height + 1.0)
    src_x = np.clip(src_x + 1.0, 0.0, width + 1.0)
    y0 = np.minimum(np.floor(src_y).astype(np.intp), height)
    x0 = np.minimum(np.floor(src_x).astype(np.intp), width)
    wy = (src_y - y0).astype(np.float32)
    wx = (src_x - x0).astype(np.float32)
    flat = padded.reshape(count, -1)
    stride = width + 2

    def sample(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        index = (yy * stride + xx).reshape(count, -1)
        return np.take_along_axis(flat, index, axis=1).reshape(count, height, width)

    top = sample(y0, x0) * (1 - wx) + sample(y0, x0 + 1) * wx
    bottom = sample(y0 + 1, x0) * (1 - wx) + sample(y0 + 1, x0 + 1) * wx
    value = top * (1 - wy) + bottom * wy
    return np.clip(np.rint(value), 0, 255).astype(np.uint8)


def augment_images(
    images: np.ndarray, rng: np.random.Generator, *, max_shift: float = 2.0, max_rotation: float = 10.0
) -> np.ndarray:
    """Randomly shift and rotate each image.

    Args:
        images: ``(N, H, W)`` uint8 raw pixels.
        rng: the only source of randomness (seed it for repeatable output).
        max_shift: largest shift in pixels along each axis (0: no shift).
        max_rotation: largest rotation in degrees (0: no rotation).

    Returns:
        ``(N, H, W)`` uint8 images (a new array; the input is not modified).

    Raises:
        ValueError: wrong dtype or shape, or a negative limit.
    """
    _check_images(images)
    if max_shift < 0 or max_rotation < 0:
        raise ValueError(f"max_shift and max_rotation must be >= 0, got {max_shift} and {max_rotation}")
    count = len(images)
    angles = rng.uniform(-max_rotation, max_rotation, size=count)
    shifts = rng.uniform(-max_shift, max_shift, size=(count, 2))
    return transform_images(images, angles, shifts)
