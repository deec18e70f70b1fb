"""The one place that loads, places and evicts models.

Every model goes through `get_manager().load(key, loader, ...)`, so stages ask for their model
every time without reloading it.

Inside ComfyUI, ComfyUI's model management is the one authority: torch models are wrapped in a
ModelPatcher (in a bare container module) and placed with `load_models_gpu(...,
force_full_load=True)`; ONNX Runtime sessions are registered as models of their file's size, so
ComfyUI makes room for them and its eviction (`free_memory`, `unload_all_models`, the editor's
"free memory") frees them; out-of-memory is told by ComfyUI's own test. Outside ComfyUI this
manager does it itself: an LRU cache under a memory budget, evicting older models instead of
running out of memory.

Stage time and peak memory are profiling.py's. torch is imported lazily: the CPU draft path
(Piper + slides) never pays for it.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

from .errors import PodiumError
from .profiling import fmt_bytes as _fmt_bytes

log = logging.getLogger("podium.memory")
T = TypeVar("T")
GiB = 1024**3
KINDS = ("torch", "onnx", "other")
CPU_BUDGET_FRACTION = 0.5  # of system RAM, when models live on the CPU
CUDA_RESERVE_FRACTION = 0.1  # of VRAM left for activations and other processes (>= 1 GiB)


@dataclass
class _Entry:
    value: Any
    size_bytes: int
    kind: str
    stage: Optional[str]
    patcher: Any = None  # comfy ModelPatcher, inside ComfyUI only


def _cuda_ready() -> bool:
    """CUDA usable; asked only if something else already imported torch."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available()


def _comfy_mm():
    """comfy.model_management when running inside ComfyUI, else None.

    Looked up in sys.modules, never imported: importing it elsewhere would import torch and
    pick a device as a side effect. ComfyUI always imports it before loading custom nodes.
    """
    return sys.modules.get("comfy.model_management")


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` means out of memory: ComfyUI's own test inside ComfyUI (is_oom, else its
    OOM_EXCEPTION in releases before is_oom), else torch's error or the allocator's message."""
    mm = _comfy_mm()
    if mm is not None:
        test = getattr(mm, "is_oom", None)
        if test is not None:
            return bool(test(exc))
        oom = getattr(mm, "OOM_EXCEPTION", None)
        if isinstance(oom, type) and oom is not Exception and isinstance(exc, oom):
            return True
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _system_ram_bytes() -> int:
    try:
        import psutil
        return psutil.virtual_memory().total
    except ImportError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _torch_modules(obj) -> list:
    """The nn.Modules a loaded object holds: itself, a pipeline's components, or attributes."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return [obj]
    parts = getattr(obj, "components", None)
    values = parts.values() if isinstance(parts, dict) else getattr(obj, "__dict__", {}).values()
    return [v for v in values if isinstance(v, torch.nn.Module)]


def _torch_bytes(modules) -> int:
    tensors = {id(t): t for m in modules for t in [*m.parameters(), *m.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


_session_patcher_class = None


def _session_patcher(size: int, device, on_detach: Callable[[], None]):
    """A ModelPatcher standing for an ONNX Runtime session: an empty module whose size is the
    session's, resident until ComfyUI detaches it, which calls `on_detach` (we drop the session)."""
    global _session_patcher_class
    import torch
    from comfy.model_patcher import ModelPatcher
    from comfy.patcher_extension import CallbacksMP

    if _session_patcher_class is None:
        class OnnxSessionPatcher(ModelPatcher):
            def loaded_size(self):
                return self.size if self.podium_resident else 0

        _session_patcher_class = OnnxSessionPatcher

    patcher = _session_patcher_class(torch.nn.Module(), load_device=device,
                                     offload_device=torch.device("cpu"), size=max(1, int(size)))
    patcher.podium_resident = True

    def detached(p, unpatch_all=True):
        p.podium_resident = False
        on_detach()

    patcher.add_callback(CallbacksMP.ON_DETACH, detached)
    return patcher


class ModelManager:
    """The model cache; see the module docstring."""

    def __init__(self, budget_bytes: Optional[int] = None, device: Optional[str] = None):
        self._budget = budget_bytes
        self._device = device
        self._entries: "OrderedDict[str, _Entry]" = OrderedDict()
        self._lock = threading.RLock()

    @property
    def budget_bytes(self) -> int:
        """The given budget, else $PODIUM_VRAM_BUDGET_GB, else VRAM minus a reserve, else RAM/2.
        Used outside ComfyUI only: inside, ComfyUI decides what stays loaded."""
        if self._budget is not None:
            return int(self._budget)
        env = os.environ.get("PODIUM_VRAM_BUDGET_GB", "").strip()
        if env:
            try:
                return int(float(env) * GiB)
            except ValueError:
                raise PodiumError(f"PODIUM_VRAM_BUDGET_GB must be a number of GB, not {env!r}") from None
        if self.device.startswith("cuda"):
            import torch

            total = torch.cuda.get_device_properties(torch.device(self.device)).total_memory
            return int(total - max(GiB, total * CUDA_RESERVE_FRACTION))
        return int(_system_ram_bytes() * CPU_BUDGET_FRACTION)

    @property
    def device(self) -> str:
        """Where torch models go: ComfyUI's device inside ComfyUI, else cuda if usable, else cpu."""
        if self._device:
            return self._device
        mm = _comfy_mm()
        if mm is not None:
            return str(mm.get_torch_device())
        return "cuda" if _cuda_ready() else "cpu"

    def onnx_providers(self) -> list[str]:
        """ONNX Runtime providers for this device: CUDA first when this onnxruntime has it."""
        import onnxruntime as ort
        if self.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def room_bytes(self) -> int:
        """The most one model may take on this device now: inside ComfyUI its device's total
        memory less what it keeps for inference (it evicts the rest for us); outside, the budget,
        on CUDA no more than the free memory plus what our own models (evictable) hold."""
        mm = _comfy_mm()
        if mm is not None:
            device = mm.get_torch_device()
            return int(mm.get_total_memory(device) - mm.minimum_inference_memory())
        budget = self.budget_bytes
        if self.device.startswith("cuda"):
            import torch

            free, _ = torch.cuda.mem_get_info(torch.device(self.device))
            return int(min(budget, free + self.used_bytes))
        return budget

    @property
    def used_bytes(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    def loaded(self) -> list[tuple[str, int, str, Optional[str]]]:
        """(key, size_bytes, kind, stage) of every cached model, least recently used first."""
        with self._lock:
            return [(k, e.size_bytes, e.kind, e.stage) for k, e in self._entries.items()]

    def load(self, key: str, loader: Callable[[], T], *, size_bytes: Optional[int] = None,
             kind: str = "torch", stage: Optional[str] = None, work_bytes: int = 0,
             on_gpu: bool = False) -> T:
        """The cached model for `key`, else `loader()`'s result: measured, made room for, placed.

        `size_bytes` lets room be made before loading (torch sizes are measured after);
        `work_bytes` is the working memory inference needs beyond the weights (ComfyUI's
        memory_required); `on_gpu`: an ONNX model that will run on the GPU (else RAM).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.kind == "torch" and entry.patcher is not None:  # ComfyUI may have offloaded it
                    self._comfy_load(entry, work_bytes)
                return entry.value
            mm = _comfy_mm()
            patcher = None
            if mm is not None and kind == "onnx":  # ComfyUI makes room before the session allocates
                patcher = self._register_session(key, int(size_bytes or 0), on_gpu)
            elif mm is None and size_bytes:
                self._make_room(size_bytes)
            try:
                value = loader()
            except BaseException:
                if patcher is not None:
                    self._comfy_unload(patcher)
                raise
            entry = _Entry(value, self._measure(value, kind, size_bytes), kind, stage, patcher)
            if mm is None:
                self._make_room(entry.size_bytes)
            if kind == "torch":
                self._place_or_explain(key, entry, work_bytes)
            self._entries[key] = entry
            log.info("loaded %s (%s, %s) for %s", key, kind, _fmt_bytes(entry.size_bytes), self.device)
            return value

    def load_onnx(self, key: str, path, *, stage: Optional[str] = None, **session_options):
        """An ONNX Runtime session for `path` on this device's providers, sized by its file."""
        import onnxruntime as ort
        size, providers = os.path.getsize(path), self.onnx_providers()
        return self.load(key, lambda: ort.InferenceSession(str(path), providers=providers, **session_options),
                         size_bytes=size, kind="onnx", stage=stage,
                         on_gpu=providers[0] == "CUDAExecutionProvider")

    def _measure(self, value, kind: str, size_bytes: Optional[int]) -> int:
        if kind == "torch":
            return _torch_bytes(_torch_modules(value)) or int(size_bytes or 0)
        if size_bytes is not None:
            return int(size_bytes)
        path = getattr(value, "_model_path", None)  # onnxruntime.InferenceSession keeps it
        return os.path.getsize(path) if isinstance(path, str) and os.path.isfile(path) else 0

    # ---- inside ComfyUI --------------------------------------------------------------------

    def _register_session(self, key: str, size: int, on_gpu: bool):
        """An ONNX session's stand-in in ComfyUI's loaded models, on the device the session runs
        on (a CPU session is RAM, not VRAM); ComfyUI detaching it drops our entry."""
        import torch

        mm = _comfy_mm()
        device = mm.get_torch_device() if on_gpu else torch.device("cpu")
        holder: dict = {}
        patcher = _session_patcher(size, device, lambda: self._forget(key, holder.get("patcher")))
        holder["patcher"] = patcher
        mm.load_models_gpu([patcher], force_full_load=True)
        return patcher

    def _forget(self, key: str, patcher) -> None:
        """ComfyUI unloaded the session `patcher` stands for: drop it, so its memory goes."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.patcher is patcher:
                del self._entries[key]
                entry.value = entry.patcher = None
                log.info("ComfyUI unloaded %s", key)

    @staticmethod
    def _comfy_unload(patcher) -> None:
        """Have ComfyUI unload one model (its own path: it detaches and forgets it)."""
        mm = _comfy_mm()
        others = [lm for lm in mm.current_loaded_models if lm.model is not patcher]
        mm.free_memory(1e30, patcher.load_device, keep_loaded=others)

    def _place_or_explain(self, key: str, entry: _Entry, work_bytes: int) -> None:
        """Place the model; on out-of-memory free memory once (ours outside ComfyUI, ComfyUI's
        inside), then say what happened."""
        for attempt in (1, 2):
            try:
                return self._place(entry, work_bytes)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                mm = _comfy_mm()
                if attempt == 2 or (mm is None and not self._entries):
                    raise PodiumError(f"not enough memory on {self.device} for {key} "
                                      f"({_fmt_bytes(entry.size_bytes)}): choose a smaller preset "
                                      "or set PODIUM_VRAM_BUDGET_GB lower") from exc
                if mm is None:
                    self.evict()
                else:
                    mm.unload_all_models()
                    mm.soft_empty_cache()

    def _place(self, entry: _Entry, work_bytes: int) -> None:
        modules, mm = _torch_modules(entry.value), _comfy_mm()
        if mm is None:
            for module in modules:
                module.to(self.device)
            return
        import torch
        from comfy.model_patcher import ModelPatcher  # not CoreModelPatcher: no comfy.ops layers here
        if entry.patcher is None:
            container = torch.nn.Module()  # bare: ModelPatcher sets .device, read-only on HF models
            for i, module in enumerate(modules):
                container.add_module(f"m{i}", module)
            entry.patcher = ModelPatcher(container, load_device=mm.get_torch_device(),
                                         offload_device=torch.device("cpu"), size=entry.size_bytes)
        self._comfy_load(entry, work_bytes)

    @staticmethod
    def _comfy_load(entry: _Entry, work_bytes: int) -> None:
        _comfy_mm().load_models_gpu([entry.patcher], memory_required=work_bytes, force_full_load=True)

    # ---- outside ComfyUI ---------------------------------------------------------------------

    def _make_room(self, need: int) -> None:
        budget, dropped = self.budget_bytes, False
        while self._entries and self.used_bytes + need > budget:
            self._drop(next(iter(self._entries)))  # least recently used first
            dropped = True
        if dropped:
            self._release()
        if need > budget:
            log.warning("a model of %s exceeds the memory budget of %s", _fmt_bytes(need), _fmt_bytes(budget))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        log.info("evicting %s (%s)", key, _fmt_bytes(entry.size_bytes))
        if entry.patcher is not None and _comfy_mm() is not None:
            self._comfy_unload(entry.patcher)
        entry.value = entry.patcher = None

    @staticmethod
    def _release() -> None:
        gc.collect()
        if _cuda_ready():
            sys.modules["torch"].cuda.empty_cache()

    def evict(self, key: Optional[str] = None) -> int:
        """Drop one cached model (all if key is None); returns how many were dropped. Inside
        ComfyUI they are unloaded through ComfyUI.

        Memory is freed only if no caller keeps its own reference: ask the manager again
        instead of holding models between stages.
        """
        with self._lock:
            keys = list(self._entries) if key is None else [key] if key in self._entries else []
            for k in keys:
                self._drop(k)
            self._release()
            return len(keys)


_manager: Optional[ModelManager] = None
_manager_lock = threading.Lock()


def get_manager() -> ModelManager:
    """The process-wide manager: one cache shared by every stage."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = ModelManager()
        return _manager
