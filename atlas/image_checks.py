"""Is a result image degenerate? Measurable checks shared by the store (which records them with every job),
the run's warnings and the site (which never shows a degenerate image as a result).

An image is **degenerate** when any of these holds (DESIGN.md: "every image must be visibly optimised";
issue 17: noise and saturated patterns are not results):

* ``noise``: more than :data:`MAX_HIGH_FREQUENCY` of its luminance power (mean removed) lies above a quarter
  of a cycle per pixel (:func:`high_frequency_share`). Natural photos hold 0.4-30 % there (the bundled
  photos at 224 px; 30 % is the grass texture), uniform pixel noise 81 %.
* ``saturated``: more than :data:`MAX_SATURATED` of its pixel values sit at the ends of the range
  (<= 2/255 or >= 253/255; :func:`saturated_share`). The bundled photos: at most 18 %.
* ``missed``: for a class target, the model under study does not rank the class in its top
  :data:`TOP_K` on the final image (the optimisation failed).

Pure numpy (the site imports it; it never imports torch).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import numpy as np

#: Above this share of high-frequency luminance power an image is noise (natural photos: <= 0.30).
MAX_HIGH_FREQUENCY = 0.45
#: Above this share of pixel values at 0 or 1 an image is saturated (natural photos: <= 0.18).
MAX_SATURATED = 0.4
#: A class image whose class the model under study does not rank in its top TOP_K has missed its target.
TOP_K = 5
#: Radial frequency (cycles per pixel) above which power counts as high-frequency: half the Nyquist band.
CUTOFF = 0.25


def _luminance(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64)
    if x.dtype.kind in "ui" or x.max() > 1.0 + 1e-6:
        x = x / 255.0
    return x.mean(axis=2) if x.ndim == 3 else x


def high_frequency_share(image: np.ndarray, cutoff: float = CUTOFF) -> float:
    """Share of the luminance power (mean removed) at radial frequencies above ``cutoff`` cycles/pixel;
    ``image`` is (H, W) or (H, W, C), in [0, 1] or 8-bit."""
    y = _luminance(image)
    y = y - y.mean()
    power = np.abs(np.fft.rfft2(y)) ** 2
    h, w = y.shape
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    weight = np.full(power.shape, 2.0)  # the rfft's half plane: interior columns stand for two coefficients
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    total = float((power * weight).sum())
    return float((power * weight)[f > cutoff].sum() / total) if total > 0 else 0.0


def saturated_share(image: np.ndarray) -> float:
    """Share of pixel values at the ends of the range (<= 2/255 or >= 253/255)."""
    x = np.asarray(image, dtype=np.float64)
    if x.dtype.kind in "ui" or x.max() > 1.0 + 1e-6:
        x = x / 255.0
    return float(((x < 2.5 / 255) | (x > 252.5 / 255)).mean())


def image_checks(image: np.ndarray) -> Dict[str, float]:
    """The measures a store records with every result image (``meta["checks"]``)."""
    return {"high_frequency": round(high_frequency_share(image), 4), "saturated": round(saturated_share(image), 4)}


def degenerate_reason(checks: Mapping[str, Any], scores: Optional[Mapping[str, Any]] = None,
                      kind: str = "class") -> Optional[str]:
    """Why an image is degenerate (one line), or None. ``checks``: :func:`image_checks`; ``scores``: the
    job's stored scores (``rank_end``: the class's rank under the model studied, class targets only)."""
    hf = checks.get("high_frequency")
    if isinstance(hf, (int, float)) and hf > MAX_HIGH_FREQUENCY:
        return (f"noise: {hf:.0%} of its luminance power lies above {CUTOFF} cycles/pixel "
                f"(natural photos: at most 30 %; limit {MAX_HIGH_FREQUENCY:.0%})")
    sat = checks.get("saturated")
    if isinstance(sat, (int, float)) and sat > MAX_SATURATED:
        return (f"saturated: {sat:.0%} of its pixel values sit at 0 or 1 "
                f"(natural photos: at most 18 %; limit {MAX_SATURATED:.0%})")
    rank = (scores or {}).get("rank_end")
    if kind == "class" and isinstance(rank, (int, float)) and rank > TOP_K:
        return f"missed: the model ranks the target class {int(rank)}th on this image (not in its top {TOP_K})"
    return None
