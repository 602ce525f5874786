"""Face geometry: the similarity transform that aligns five landmarks to ArcFace's template,
the aligned crop a recogniser embeds, and non-maximum suppression of detector boxes."""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["ARCFACE_TEMPLATE", "align_face", "nms", "similarity_transform"]

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) taking ``src`` points closest to ``dst``.

    Least squares in closed form (Umeyama 1991), as scikit-image's ``SimilarityTransform``
    and OpenCV's ``FaceRecognizerSF`` compute it; reflections are excluded.

    Raises:
        ValueError: fewer than two distinct points.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError("similarity_transform needs two arrays of at least two matching points")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("the landmarks are all at one point")
    cov = dc.T @ sc / len(src)
    d = np.array([1.0, 1.0])
    if np.linalg.det(cov) < 0:
        d[1] = -1.0
    u, s, vt = np.linalg.svd(cov)
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / var_s)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def align_face(image: Image.Image, landmarks: np.ndarray, size: int = 112) -> Image.Image:
    """An RGB ``size``×``size`` crop in which the 5 landmarks sit on the ArcFace template.

    ``landmarks`` are in PIL coordinates of ``image`` (as :class:`Face` gives them); the
    template is scaled by ``size / 112``. Bilinear sampling, black outside the image
    (what OpenCV's ``warpAffine`` does for InsightFace and SFace).
    """
    # The template is in OpenCV's convention (pixel centres at integers), PIL's puts them at +0.5.
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2) - 0.5
    matrix = similarity_transform(src, ARCFACE_TEMPLATE * (size / 112.0))
    a = matrix[:, :2]
    inv = np.linalg.inv(a)
    inv_t = -inv @ matrix[:, 2]
    # PIL asks, for the output point (x, y) (pixel centres at +0.5), which input point to
    # sample (same convention): input = inv · (output - 0.5) + inv_t + 0.5.
    offset = inv_t + 0.5 - inv @ np.array([0.5, 0.5])
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.transform((size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                         fillcolor=(0, 0, 0))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)
