"""The circle picture-in-picture box (lecture layouts) as the viewer sees it: encoded, decoded,
its edge fades into the background inside the box, with no seam where the box is cut."""
from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np

from podium.engines.compose import Pip, PipVisual, place, shape_mask
from podium.engines.output import encode_video

W, H = 320, 192
PAGE, FACE = (40, 90, 160), (250, 200, 30)


class Plain:
    """A visual of one colour."""

    def __init__(self, colour, width, height):
        self.width, self.height = width, height
        self.frame = np.full((height, width, 3), colour, np.uint8)

    def render(self, t):
        return self.frame


def first_frame(path) -> np.ndarray:
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(out, np.uint8).reshape(H, W, 3).astype(np.int16)


def test_the_circle_mask_is_symmetric_and_clear_of_the_box_edges():
    for w, h in ((96, 96), (180, 180), (240, 136), (50, 50)):
        alpha = shape_mask(w, h, "circle")[..., 0]
        assert np.allclose(alpha, alpha[:, ::-1], atol=1e-6) and np.allclose(alpha, alpha[::-1], atol=1e-6)
        assert alpha[:, :2].max() == 0 and alpha[:, -2:].max() == 0  # the outer two columns (a chroma pair)
        assert alpha[:2].max() == 0 and alpha[-2:].max() == 0
        assert alpha[h // 2, w // 2] == 1 and alpha[h // 2, 4] > 0.5 and alpha[h // 2, w - 5] > 0.5  # still round


def test_a_decoded_circle_pip_has_no_seam_at_the_box_edges(tmp_path):
    pip = Pip("bottom-right", 0.5, "circle", 0, 16)
    w, h = pip.box_size(W, H)
    visual = PipVisual(Plain(PAGE, W, H), Plain(FACE, w, h), pip)
    out = encode_video(tmp_path / "circle.mp4", visual.render, (W, H), np.zeros(1600, np.float32), 16000, 8)
    frame, composed = first_frame(out), visual.render(0).astype(np.int16)
    x, y, w, h = place(visual.background.render(0), pip).rect
    page = np.array(PAGE, np.int16)
    # just inside the box's left and right edges (and top and bottom) the page shows, as composed
    # exactly, and decoded within the codec's ringing beside the circle's edge (a few levels at
    # the preset's crf 23; the seam was half the presenter's colour, ~100 levels here)
    for column in (x, x + 1, x + w - 2, x + w - 1):
        assert np.array_equal(composed[y:y + h, column], np.broadcast_to(page, (h, 3))), column - x
        seam = np.abs(frame[y:y + h, column] - page).max()
        assert seam <= 24, (column - x, seam)
    for row in (y, y + 1, y + h - 2, y + h - 1):
        assert np.array_equal(composed[row, x:x + w], np.broadcast_to(page, (w, 3))), row - y
        assert np.abs(frame[row, x:x + w] - page).max() <= 24, row - y
    assert np.abs(frame[y + h // 2, x + w // 2] - np.array(FACE)).max() <= 12  # the presenter is there
    assert np.array_equal(composed[y:y + h, x:x + w], composed[y:y + h, x:x + w][:, ::-1])  # both sides alike
