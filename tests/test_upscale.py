"""Real-ESRGAN upscaling: a random-weight RRDBNet in basicsr's Real-ESRGAN layout, saved as .pth
and loaded by the engine's real loader (spandrel); tiling with blended seams; the tile halved
under a real memory limit; UpscaleVisual streaming frame by frame; the two nodes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("spandrel")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from podium.engines.output import encode_video, frames_for  # noqa: E402
from podium.engines.upscale import (UpscaleVisual, load_upscaler, upscale_image,  # noqa: E402
                                    upscale_rgb)
from podium.errors import ModelMissingError, PodiumError  # noqa: E402
from podium import profiling  # noqa: E402
from podium.memory import get_manager  # noqa: E402
from podium.nodes.upscale import PodiumUpscale, PodiumUpscaleImage, upscaler_ids  # noqa: E402


# ---- basicsr's RRDBNet (Real-ESRGAN x4plus / x2plus), same parameter names and forward ------
class RDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        for i in range(5):
            conv = nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, 1, 1)
            nn.init.kaiming_normal_(conv.weight)  # basicsr's default_init_weights(scale=0.1)
            conv.weight.data *= 0.1
            conv.bias.data.zero_()
            setattr(self, f"conv{i + 1}", conv)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f"conv{i}")(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = RDB(nf, gc), RDB(nf, gc), RDB(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (4 if scale == 2 else 1), num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
            setattr(self, name, nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        feat = self.conv_first(F.pixel_unshuffle(x, 2) if self.scale == 2 else x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def build(path, scale: int = 4, num_block: int = 2, seed: int = 0) -> RRDBNet:
    """A random RRDBNet saved as Real-ESRGAN's .pth files are ({"params_ema": state_dict}).

    The last conv is rescaled around grey so the output spans [0, 1] without clipping: with
    raw random weights most pixels clamp to 0 and comparing outputs would prove nothing."""
    torch.manual_seed(seed)
    net = RRDBNet(scale, num_block=num_block).eval()
    with torch.no_grad():
        spread = net(torch.rand(1, 3, 32, 32)).std().item()
        net.conv_last.weight.mul_(0.15 / spread)
        net.conv_last.bias.fill_(0.5)
    torch.save({"params_ema": net.state_dict()}, path)
    return net


@pytest.fixture(scope="module")
def x4(tmp_path_factory):
    path = tmp_path_factory.mktemp("upscale") / "RealESRGAN_x4plus.pth"
    net = build(path)
    yield path, net
    get_manager().evict(f"upscale:{path.resolve()}")


def picture(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 255 / h, xx * 255 / w, (yy + xx) * 127 / (h + w)], -1)
    noise = np.random.default_rng(seed).integers(-20, 21, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


# ---- loader ---------------------------------------------------------------------------------

def test_spandrel_loads_realesrgan_layout_and_matches_basicsr(x4, tmp_path):
    path, net = x4
    model = load_upscaler(path)
    assert model.architecture.id == "ESRGAN" and model.scale == 4 and "2nb" in model.tags
    assert model.dtype == torch.float32 and str(model.device) == "cpu" and not model.model.training
    assert not any(p.requires_grad for p in model.model.parameters())
    assert load_upscaler(path) is model  # cached by the memory manager
    assert f"upscale:{path.resolve()}" in [key for key, *_ in get_manager().loaded()]
    image = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        expected = net(image).clamp(0, 1)
    assert torch.allclose(model(image), expected, atol=1e-5)

    x2_path = tmp_path / "RealESRGAN_x2plus.pth"
    build(x2_path, scale=2, num_block=1)
    x2 = load_upscaler(x2_path)
    assert x2.scale == 2 and "unshuffle" in x2.tags
    assert upscale_image(x2, picture(16, 12)).shape == (32, 24, 3)
    get_manager().evict(f"upscale:{x2_path.resolve()}")


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(PodiumError, match="not found"):
        load_upscaler(tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PodiumError, match="cannot load upscale model"):
        load_upscaler(junk)


# ---- tiling ---------------------------------------------------------------------------------

def test_tiled_equals_untiled_with_blended_seams(x4):
    model = load_upscaler(x4[0])
    image = picture()
    whole = upscale_image(model, image, tile=512)
    direct = model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    assert np.array_equal(whole, (direct[0].permute(1, 2, 0) * 255).round().byte().numpy())
    assert whole.shape == (128, 128, 3) and whole.std() > 20  # not a flat, clipped output

    blended = np.abs(upscale_image(model, image, tile=16, overlap=8).astype(int) - whole)
    hard = np.abs(upscale_image(model, image, tile=16, overlap=0).astype(int) - whole)
    assert blended.mean() < 1.0 and blended.max() <= 12, (blended.mean(), blended.max())
    assert blended.mean() < hard.mean() / 2  # blending, not luck, keeps the seams away
    out, tile = upscale_rgb(model, picture(20, 36), tile=16, overlap=4)  # odd sizes, edge tiles
    assert out.shape == (80, 144, 3) and tile == 16


OOM_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, torch
    from podium.engines.upscale import load_upscaler, upscale_rgb
    from podium.errors import PodiumError
    torch.set_num_threads(1)  # one thread, one malloc arena (MALLOC_ARENA_MAX): a steady footprint
    model = load_upscaler(sys.argv[1])
    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    # Warm up at the 32 px tile's shapes: oneDNN builds a kernel per shape, so the 32 px run
    # under the limit needs memory for the tile only (a build that cannot allocate says "could
    # not create a primitive", which the upscaler takes as out of memory and halves the tile).
    upscale_rgb(model, image[:32, :32], 32)
    def vm_size():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    # A 128 px tile at x4 needs 64 MB per 64-channel feature map; a 32 px tile, 4 MB.
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + int(sys.argv[2]) * 2**20, hard))
    try:
        out, tile = upscale_rgb(model, image, 128, 8)
        result = {"tile": tile}
    except PodiumError as err:
        result = {"error": str(err)}
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if "tile" in result:
        result["same"] = bool(np.array_equal(out, upscale_rgb(model, image, result["tile"], 8)[0]))
    print(json.dumps(result))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
@pytest.mark.parametrize("headroom_mb", [96, 8])
def test_tile_halves_under_a_real_memory_limit(tmp_path, headroom_mb):
    """A real allocation failure, not a simulated one: the address space of a child process is
    capped, so torch's CPU allocator fails ("can't allocate memory", or oneDNN's "could not
    create a primitive") for big tiles. (CUDA's torch.OutOfMemoryError takes the same path; no
    GPU here to show it.) The address space a run reserves varies by a few tens of MB from run
    to run, so the limits sit far from the edges: 96 MB never holds a 128 px tile at x4 (its
    64-channel maps are 64 MB each) and always a 32 px one (4 MB); 8 MB never holds any."""
    build(tmp_path / "x4.pth", num_block=1)
    done = subprocess.run([sys.executable, "-c", OOM_SCRIPT, str(tmp_path / "x4.pth"), str(headroom_mb)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MALLOC_ARENA_MAX": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if headroom_mb == 96:
        assert result.get("tile") in (32, 64) and result["same"], result  # same pixels as unlimited
        tile = 128
        while tile > result["tile"]:  # each halving said, down to the tile that fitted
            assert f"out of memory on cpu with {tile} px tiles, retrying with {tile // 2}" in done.stderr
            tile //= 2
    else:
        assert "not enough memory on cpu to upscale even 32 px tiles" in result["error"], result
        assert "retrying with 32" in done.stderr  # it got there by halving, not by a crash


def test_cpu_allocation_failures_are_out_of_memory():
    """oneDNN's vague "could not create a primitive" counts as out of memory on the CPU only."""
    from podium.engines.upscale import _out_of_memory

    assert _out_of_memory(RuntimeError("could not create a primitive"), "cpu")
    assert not _out_of_memory(RuntimeError("could not create a primitive"), "cuda:0")
    assert _out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "cuda:0")
    assert _out_of_memory(MemoryError(), "cpu")
    assert not _out_of_memory(RuntimeError("shape mismatch"), "cpu")


# ---- UpscaleVisual --------------------------------------------------------------------------

class Moving:
    """A 32x32 visual that records each render(t)."""
    width = height = 32

    def __init__(self):
        self.calls: list[float] = []

    def render(self, t: float) -> np.ndarray:
        self.calls.append(t)
        return np.roll(picture(), int(t * 10), axis=1)


def test_upscale_visual_streams_frame_by_frame(x4, tmp_path):
    base = Moving()
    visual = UpscaleVisual(base, x4[0], tile=16, overlap=4)  # a path: asked of the manager per frame
    assert (visual.width, visual.height) == (128, 128)
    frame = visual.render(0.3)
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8 and base.calls == [0.3]
    assert np.array_equal(frame, upscale_image(load_upscaler(x4[0]), base.render(0.3), 16, 4))

    base.calls.clear()
    visual.tile = 512
    sr, fps = 8000, 5
    samples = np.zeros(sr, np.float32)
    out = encode_video(tmp_path / "up.mp4", visual.render, (128, 128), samples, sr, fps)
    assert out.is_file() and len(base.calls) == frames_for(1.0, fps)
    assert base.calls == sorted(base.calls)  # pulled one frame at a time, in order

    small = UpscaleVisual(Moving(), load_upscaler(x4[0]), out_size=(64, 48))
    assert small.render(0).shape == (48, 64, 3)
    with pytest.raises(PodiumError, match="region"):
        UpscaleVisual(Moving(), x4[0], region="hands")


def test_face_region_upscales_only_the_tracked_face(x4):
    model = load_upscaler(x4[0])
    boxes = iter([(8, 8, 24, 24), (10, 8, 26, 24), None, None])
    seen = []

    def detector(rgb):
        seen.append(rgb.shape)
        return next(boxes)

    base = Moving()
    visual = UpscaleVisual(base, model, region="face", detect_every=3, margin=0.25, detector=detector)
    first = visual.render(0)
    plain = cv2.resize(base.render(0), (128, 128), interpolation=cv2.INTER_CUBIC)
    inside = np.zeros((128, 128), bool)
    inside[16:112, 16:112] = True  # the box widened by 25 %, at x4
    assert np.array_equal(first[~inside], plain[~inside])  # the rest: conventional resize
    face = upscale_image(model, base.render(0)[4:28, 4:28])  # 24x24 -> 96x96, the model's own
    assert np.array_equal(first[28:100, 28:100], face[12:84, 12:84])  # inside the soft edge
    assert not np.array_equal(first[inside], plain[inside])

    for i in range(1, 7):
        visual.render(i / 10)
    assert np.array_equal(visual._box, [9, 8, 25, 24])  # frame 3's box, smoothed with frame 0's
    assert visual._box is not None  # frame 6 missed the face: the box is held
    for i in range(7, 10):
        visual.render(i / 10)
    assert len(seen) == 4  # frames 0, 3, 6, 9: once every detect_every frames
    assert visual._box is None  # two misses in a row drop the box
    assert np.array_equal(visual.render(1.0),
                          cv2.resize(base.render(1.0), (128, 128), interpolation=cv2.INTER_CUBIC))
    visual.detector = lambda rgb: (8, 8, 24, 24)
    assert np.array_equal(visual.render(0), first)  # rendered again from the start: fresh tracking


def drawn_face(size: int = 64, r: int = 22) -> np.ndarray:
    """A cartoon face OpenCV's Haar cascade finds: skin oval, hair, brows, eyes, nose, mouth."""
    c = size // 2
    img = np.full((size, size, 3), (70, 90, 120), np.uint8)
    cv2.ellipse(img, (c, c), (int(r * 0.8), r), 0, 0, 360, (225, 185, 160), -1)
    cv2.ellipse(img, (c, c - int(r * 0.9)), (int(r * 0.85), int(r * 0.45)), 0, 180, 360, (60, 40, 30), -1)
    for side in (-1, 1):
        ex, ey = c + side * int(r * 0.35), c - int(r * 0.15)
        cv2.ellipse(img, (ex, ey - int(r * 0.2)), (int(r * 0.2), int(r * 0.06)), 0, 0, 360, (70, 50, 40), -1)
        cv2.ellipse(img, (ex, ey), (int(r * 0.16), int(r * 0.08)), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(img, (ex, ey), int(r * 0.07), (40, 30, 30), -1)
    cv2.ellipse(img, (c, c + int(r * 0.1)), (int(r * 0.08), int(r * 0.2)), 0, 0, 360, (195, 150, 130), -1)
    cv2.ellipse(img, (c, c + int(r * 0.5)), (int(r * 0.3), int(r * 0.1)), 0, 0, 360, (150, 60, 60), -1)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def test_face_region_with_the_packs_face_detector(x4):
    """region "face" with no detector given uses lip sync's FaceDetector (YuNet if pulled, else
    OpenCV 4's Haar cascade); skipped where neither exists (OpenCV 5 without YuNet)."""
    class Face:
        width = height = 64

        def render(self, t):
            return drawn_face()

    try:
        visual = UpscaleVisual(Face(), load_upscaler(x4[0]), region="face")
    except PodiumError as err:
        pytest.skip(f"no face detector here: {err}")
    frame = visual.render(0)
    x1, y1, x2, y2 = visual._box
    assert 4 <= x1 <= 16 and 4 <= y1 <= 16 and 48 <= x2 <= 60 and 48 <= y2 <= 60  # the drawn face
    plain = cv2.resize(drawn_face(), (256, 256), interpolation=cv2.INTER_CUBIC)
    assert not np.array_equal(frame[96:160, 96:160], plain[96:160, 96:160])  # the face: the model's


# ---- nodes ----------------------------------------------------------------------------------

REGISTRY = """
models:
  - id: realesrgan-x4plus
    kind: realesrgan
    folder: upscale_models
    files: [{name: RealESRGAN_x4plus.pth, url: "https://example.invalid/x4.pth", sha256: null, size: null}]
    license: BSD-3-Clause
    commercial_use: true
    vram_gb: 1.5
    presets: [balanced, quality]
"""


@pytest.fixture
def registry(tmp_path, monkeypatch):
    (tmp_path / "models.yaml").write_text(REGISTRY)
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(tmp_path / "models.yaml"))
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models" / "upscale_models"


def test_upscale_node_by_registry_id_and_by_path(x4, registry):
    assert upscaler_ids() == ["realesrgan-x4plus"]
    spec = PodiumUpscale.INPUT_TYPES()
    assert spec["required"]["model"][0] == ["realesrgan-x4plus"]
    assert spec["required"]["region"][0] == ["frame", "face"]
    node = PodiumUpscale()
    with pytest.raises(ModelMissingError, match="podium models pull realesrgan-x4plus"):
        node.upscale(Moving(), "realesrgan-x4plus", 512, "frame", 0, 0)
    registry.mkdir(parents=True)
    (registry / "RealESRGAN_x4plus.pth").write_bytes(x4[0].read_bytes())
    (visual,) = node.upscale(Moving(), "realesrgan-x4plus", 64, "frame", 0, 0)
    assert (visual.width, visual.height) == (128, 128) and visual.render(0).shape == (128, 128, 3)
    assert visual.tile == 64
    (visual,) = node.upscale(Moving(), "realesrgan-x4plus", 64, "frame", 100, 0, model_path=str(x4[0]))
    assert (visual.width, visual.height) == (100, 100)
    assert profiling.reports[-1].name == "upscale"
    (visual,) = node.upscale(Moving(), "realesrgan-x4plus", 64, "frame", 0, 0,
                             model_path="RealESRGAN_x4plus.pth")  # relative: in upscale_models
    assert visual.render(0).shape == (128, 128, 3)
    with pytest.raises(PodiumError, match="even"):
        node.upscale(Moving(), "realesrgan-x4plus", 64, "frame", 99, 64)
    with pytest.raises(PodiumError, match="not found"):
        node.upscale(Moving(), "realesrgan-x4plus", 64, "frame", 0, 0, model_path="nope.pth")
    get_manager().evict(f"upscale:{(registry / 'RealESRGAN_x4plus.pth').resolve()}")


def test_upscale_image_node_takes_and_gives_comfy_images(x4, registry):
    images = torch.from_numpy(np.stack([picture(), picture(seed=1)])).float() / 255
    (out,) = PodiumUpscaleImage().upscale(images, "realesrgan-x4plus", 32, model_path=str(x4[0]))
    assert out.shape == (2, 128, 128, 3) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    expected = upscale_image(load_upscaler(x4[0]), picture(seed=1))
    assert np.abs((out[1].numpy() * 255).round() - expected).max() <= 1
