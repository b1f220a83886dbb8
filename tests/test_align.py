"""runtime/align.py on real LFW faces with YuNet landmarks.

What is true of a 5-point similarity alignment, and therefore what is asserted here:
- a similarity transform (4 degrees of freedom) cannot map 5 real landmarks onto the template exactly; the
  transform must be the least-squares optimum, checked against two independent solvers (a linear
  least-squares solve in (a, b, tx, ty) and scikit-image's ``SimilarityTransform``), and its residual must
  equal that optimum;
- on real LFW faces the remaining residual is face shape and pose, not alignment error: mean ≈ 2.5 px of the
  112-px crop over 15 sampled faces (eyes ≈ 1–2 px, nose up to ≈ 7 px for a turned head). The bounds below
  (mean < 4 px per face, eyes < 5 px) are that measurement with a margin;
- when the target points *are* a similarity image of the landmarks, the fit is exact (residual ≈ 0);
- the crop is the source bilinearly sampled at the inverse-mapped pixel positions.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from shrinkface.runtime.align import ARCFACE_112, align_face, similarity_transform, transform_points
from shrinkface.runtime.image import load_image

FACES = [
    ("Aaron_Peirsol", 1),
    ("George_W_Bush", 1),
    ("Serena_Williams", 1),
    ("Colin_Powell", 1),
    ("Nancy_Greenlaw", 1),
    ("Janet_Horvath", 1),
]


@pytest.fixture(scope="module")
def faces(lfw_image, detector) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB image, 5×2 YuNet landmarks in float64) for a few real LFW faces."""
    out = []
    for name, number in FACES:
        img = load_image(lfw_image(name, number))
        out.append((img, detector.detect_one(img, "central").landmarks.astype(np.float64)))
    return out


def _lstsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Independent solve: x' = a·x − b·y + tx, y' = b·x + a·y + ty by linear least squares."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def test_matrix_matches_scikit_image_and_lstsq(faces):
    for _, landmarks in faces:
        matrix = similarity_transform(landmarks, ARCFACE_112)
        reference = SimilarityTransform.from_estimate(landmarks, ARCFACE_112)
        assert reference, "scikit-image failed to estimate"
        np.testing.assert_allclose(matrix, reference.params[:2], atol=1e-6)
        np.testing.assert_allclose(matrix, _lstsq_similarity(landmarks, ARCFACE_112), atol=1e-6)
        # a proper similarity: rotation × uniform scale, no shear, no reflection
        lin = matrix[:, :2]
        assert lin[0, 0] == pytest.approx(lin[1, 1]) and lin[0, 1] == pytest.approx(-lin[1, 0])
        assert np.linalg.det(lin) > 0


def test_residual_is_the_least_squares_optimum_and_small(faces):
    means = []
    for _, landmarks in faces:
        matrix = similarity_transform(landmarks, ARCFACE_112)
        residual = np.linalg.norm(transform_points(matrix, landmarks) - ARCFACE_112, axis=1)
        optimum = _lstsq_similarity(landmarks, ARCFACE_112)
        best = np.linalg.norm(transform_points(optimum, landmarks) - ARCFACE_112, axis=1)
        assert (residual**2).sum() == pytest.approx((best**2).sum(), rel=1e-9)
        # any nudge of the similarity's parameters (a, b, tx, ty) makes the fit worse
        rng = np.random.default_rng(0)
        for _ in range(20):
            da, db, dx, dy = rng.normal(0, [1e-3, 1e-3, 0.1, 0.1])
            nudged = matrix + np.array([[da, -db, dx], [db, da, dy]])
            worse = np.linalg.norm(transform_points(nudged, landmarks) - ARCFACE_112, axis=1)
            assert (worse**2).sum() > (residual**2).sum()
        assert residual.mean() < 4.0, residual
        assert residual[:2].max() < 5.0, residual  # the eyes
        means.append(residual.mean())
    assert np.mean(means) < 3.5


def test_exact_fit_when_an_exact_similarity_exists(faces):
    _, landmarks = faces[0]
    angle, scale, shift = np.deg2rad(17.0), 0.61, np.array([-23.5, 41.25])
    true = np.array([[scale * np.cos(angle), -scale * np.sin(angle)], [scale * np.sin(angle), scale * np.cos(angle)]])
    target = landmarks @ true.T + shift
    matrix = similarity_transform(landmarks, target)
    np.testing.assert_allclose(matrix[:, :2], true, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-7)
    assert np.abs(transform_points(matrix, landmarks) - target).max() < 1e-7


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Manual bilinear sampling of an H×W×C image at float positions (all inside the image)."""
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    img = image.astype(np.float64)
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def test_crop_is_the_source_bilinearly_sampled(faces):
    for image, landmarks in faces:
        crop = align_face(image, landmarks)
        assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
        matrix = similarity_transform(landmarks, ARCFACE_112)
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
        ys, xs = np.mgrid[0:112, 0:112]
        src = transform_points(inverse, np.stack([xs.ravel(), ys.ravel()], axis=1))
        inside = (src[:, 0] >= 0) & (src[:, 0] < image.shape[1] - 1)
        inside &= (src[:, 1] >= 0) & (src[:, 1] < image.shape[0] - 1)
        assert inside.mean() > 0.9
        expected = _bilinear(image, src[inside, 0], src[inside, 1])
        got = crop.reshape(-1, 3)[inside].astype(np.float64)
        # OpenCV interpolates with 1/32-pixel fixed-point weights: a level or two of rounding.
        assert np.abs(got - expected).max() <= 2.0
        assert np.abs(got - expected).mean() < 0.5
        # at each template point, the crop shows what the source shows around the matching landmark
        for (tx, ty), (lx, ly) in zip(ARCFACE_112, landmarks, strict=True):
            px, py = round(tx), round(ty)
            sx, sy = transform_points(inverse, np.array([[px, py]]))[0]
            assert np.abs(crop[py, px] - _bilinear(image, np.array([sx]), np.array([sy]))[0]).max() <= 2.0
            assert np.hypot(sx - lx, sy - ly) < 8.0  # template pixel maps back near the landmark


def test_outside_the_image_is_black_and_output_size_is_height_width(faces):
    image, landmarks = faces[0]
    # landmarks centred on the image's top-left corner: the crop's top-left quarter lies outside the image
    crop = align_face(image, landmarks - landmarks.mean(axis=0))
    assert (crop[:40, :40] == 0).all()
    assert crop[70:, 70:].mean() > 20
    assert align_face(image, landmarks, ARCFACE_112, (112, 96)).shape == (112, 96, 3)


@pytest.mark.parametrize(
    ("landmarks", "template"),
    [
        (np.zeros((4, 2)), ARCFACE_112),
        (np.zeros((6, 2)), ARCFACE_112),
        (np.zeros((5, 3)), ARCFACE_112),
        (np.arange(10.0).reshape(2, 5), ARCFACE_112),  # x row, y row: must not be silently reshaped
        (np.arange(10.0).reshape(5, 2), ARCFACE_112[:4]),
    ],
)
def test_bad_shapes_raise_value_error(faces, landmarks, template):
    with pytest.raises(ValueError, match="5 landmarks"):
        align_face(faces[0][0], landmarks, template)


def test_similarity_transform_rejects_bad_point_sets():
    with pytest.raises(ValueError, match="matching"):
        similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="matching"):
        similarity_transform(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="identical"):
        similarity_transform(np.ones((5, 2)), ARCFACE_112)
