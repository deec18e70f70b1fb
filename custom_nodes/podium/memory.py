"""The one place that loads, places and evicts models, and measures what each stage costs.

Every model goes through `get_manager().load(key, loader, ...)`: an LRU cache under a memory
budget, so stages ask for their model every time without reloading it, and a big model evicts
older ones instead of running out of memory. Inside ComfyUI, torch models are handed to
ComfyUI's model management, so ComfyUI can evict ours and ours can evict its.

torch is imported lazily: the CPU draft path (Piper + slides) never pays for it.
"""
from __future__ import annotations

import functools
import gc
import logging
import os
import sys
import threading
import time
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, TypeVar

from .errors import PodiumError

log = logging.getLogger("podium.memory")
T = TypeVar("T")
GiB = 1024**3
KINDS = ("torch", "onnx", "other")
CPU_BUDGET_FRACTION = 0.5  # of system RAM, when models live on the CPU
CUDA_RESERVE_FRACTION = 0.1  # of VRAM left for activations and other processes (>= 1 GiB)
SAMPLE_INTERVAL_S = 0.02


@dataclass
class StageReport:
    """Wall time and peak memory of one stage (CUDA: peak allocated; CPU: peak RSS growth)."""

    name: str
    wall_s: float = 0.0
    peak_bytes: int = 0
    device: str = "cpu"


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


def _rss_bytes() -> Optional[int]:
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


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


class _PeakRss:
    """Samples RSS in a thread: a stage's peak is gone by the time the stage returns."""

    # Readable however far __enter__/__exit__ got: a Ctrl-C landing inside them must stay a
    # KeyboardInterrupt, not become an AttributeError in the stage's `finally`.
    start = peak = growth = 0

    def __enter__(self):
        self.start = self.peak = _rss_bytes() or 0  # 0 without psutil or /proc: growth unknown
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="podium-rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self.peak = max(self.peak, _rss_bytes() or 0)

    def __exit__(self, *exc):
        self._stop.set()
        try:
            self._thread.join()
        finally:
            self.peak = max(self.peak, _rss_bytes() or 0)
            self.growth = self.peak - self.start if self.start else 0


class ModelManager:
    """LRU model cache under a memory budget; see the module docstring."""

    def __init__(self, budget_bytes: Optional[int] = None, device: Optional[str] = None):
        self._budget = budget_bytes
        self._device = device
        self._entries: "OrderedDict[str, _Entry]" = OrderedDict()
        self._lock = threading.RLock()
        self.reports: "deque[StageReport]" = deque(maxlen=1000)  # bounded: ComfyUI runs for days

    @property
    def budget_bytes(self) -> int:
        """The given budget, else $PODIUM_VRAM_BUDGET_GB, else VRAM minus a reserve, else RAM/2."""
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

    @property
    def used_bytes(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    def loaded(self) -> list[tuple[str, int, str, Optional[str]]]:
        """(key, size_bytes, kind, stage) of every cached model, least recently used first."""
        with self._lock:
            return [(k, e.size_bytes, e.kind, e.stage) for k, e in self._entries.items()]

    def load(self, key: str, loader: Callable[[], T], *, size_bytes: Optional[int] = None,
             kind: str = "torch", stage: Optional[str] = None, work_bytes: int = 0) -> T:
        """The cached model for `key`, else `loader()`'s result: measured, made room for, placed.

        `size_bytes` lets room be made before loading (torch sizes are measured after);
        `work_bytes` is the working memory inference needs beyond the weights (ComfyUI's
        memory_required).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.patcher is not None:  # ComfyUI may have offloaded it meanwhile
                    self._comfy_load(entry, work_bytes)
                return entry.value
            if size_bytes:
                self._make_room(size_bytes)
            value = loader()
            entry = _Entry(value, self._measure(value, kind, size_bytes), kind, stage)
            self._make_room(entry.size_bytes)
            if kind == "torch":
                self._place_or_explain(key, entry, work_bytes)
            self._entries[key] = entry
            log.info("loaded %s (%s, %s) for %s", key, kind, _fmt_bytes(entry.size_bytes), self.device)
            return value

    def load_onnx(self, key: str, path, *, stage: Optional[str] = None, **session_options):
        """An ONNX Runtime session for `path` on this device's providers, sized by its file."""
        import onnxruntime as ort
        size, providers, mm = os.path.getsize(path), self.onnx_providers(), _comfy_mm()
        if mm is not None and providers[0] == "CUDAExecutionProvider":
            mm.free_memory(size * 2, mm.get_torch_device())  # ComfyUI makes room for it
        return self.load(key, lambda: ort.InferenceSession(str(path), providers=providers, **session_options),
                         size_bytes=size, kind="onnx", stage=stage)

    def _measure(self, value, kind: str, size_bytes: Optional[int]) -> int:
        if kind == "torch":
            return _torch_bytes(_torch_modules(value)) or int(size_bytes or 0)
        if size_bytes is not None:
            return int(size_bytes)
        path = getattr(value, "_model_path", None)  # onnxruntime.InferenceSession keeps it
        return os.path.getsize(path) if isinstance(path, str) and os.path.isfile(path) else 0

    def _place_or_explain(self, key: str, entry: _Entry, work_bytes: int) -> None:
        """Place the model; on out-of-memory evict everything once, then say what happened."""
        for attempt in (1, 2):
            try:
                return self._place(entry, work_bytes)
            except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
                if "out of memory" not in str(exc).lower():
                    raise
                if attempt == 2 or not self._entries:
                    raise PodiumError(f"not enough memory on {self.device} for {key} "
                                      f"({_fmt_bytes(entry.size_bytes)}): choose a smaller preset "
                                      "or set PODIUM_VRAM_BUDGET_GB lower") from exc
                self.evict()

    def _place(self, entry: _Entry, work_bytes: int) -> None:
        modules, mm = _torch_modules(entry.value), _comfy_mm()
        if mm is None:
            for module in modules:
                module.to(self.device)
            return
        import torch
        from comfy.model_patcher import ModelPatcher
        container = torch.nn.Module()  # bare: ModelPatcher sets .device, read-only on HF models
        for i, module in enumerate(modules):
            container.add_module(f"m{i}", module)
        entry.patcher = ModelPatcher(container, load_device=mm.get_torch_device(),
                                     offload_device=torch.device("cpu"), size=entry.size_bytes)
        self._comfy_load(entry, work_bytes)

    @staticmethod
    def _comfy_load(entry: _Entry, work_bytes: int) -> None:
        _comfy_mm().load_models_gpu([entry.patcher], memory_required=work_bytes, force_full_load=True)

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
        mm = _comfy_mm()
        if entry.patcher is not None and mm is not None:
            for i, loaded in enumerate(mm.current_loaded_models):
                if loaded.model is entry.patcher:
                    loaded.model_unload()
                    mm.current_loaded_models.pop(i)
                    break
        entry.value = entry.patcher = None

    @staticmethod
    def _release() -> None:
        gc.collect()
        if _cuda_ready():
            sys.modules["torch"].cuda.empty_cache()

    def evict(self, key: Optional[str] = None) -> int:
        """Drop one cached model (all if key is None); returns how many were dropped.

        Memory is freed only if no caller keeps its own reference: ask the manager again
        instead of holding models between stages.
        """
        with self._lock:
            keys = list(self._entries) if key is None else [key] if key in self._entries else []
            for k in keys:
                self._drop(k)
            self._release()
            return len(keys)

    @contextmanager
    def stage(self, name: str) -> Iterator[StageReport]:
        """Time a stage and record its peak memory in `self.reports` (the report is yielded)."""
        report, torch = StageReport(name), sys.modules.get("torch")
        if _cuda_ready() and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        rss = _PeakRss()
        try:
            with rss:
                yield report
        finally:
            report.wall_s = time.perf_counter() - start
            torch = sys.modules.get("torch")  # the stage may have imported it
            if _cuda_ready() and torch.cuda.is_initialized():
                report.peak_bytes = int(torch.cuda.max_memory_allocated())
                report.device = f"cuda:{torch.cuda.current_device()}"
            else:
                report.peak_bytes = max(0, int(rss.growth))
            self.reports.append(report)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def format_reports(reports: list[StageReport]) -> str:
    """A small aligned table: stage, time, peak memory, device."""
    rows = [("stage", "time", "peak", "device")]
    rows += [(r.name, f"{r.wall_s:.2f} s", _fmt_bytes(r.peak_bytes), r.device) for r in reports]
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}  {d}" for a, b, c, d in rows)


_manager: Optional[ModelManager] = None
_manager_lock = threading.Lock()


def get_manager() -> ModelManager:
    """The process-wide manager: one budget shared by every stage."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = ModelManager()
        return _manager


def reported_stage(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a node's function so each call is a stage: timed, peak memory measured, logged
    (ComfyUI's console) and kept in `get_manager().reports` (the CLI's --report table)."""
    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with get_manager().stage(name) as report:
                result = func(*args, **kwargs)
            log.info("stage %s: %.2f s, peak %s on %s", name, report.wall_s,
                     _fmt_bytes(report.peak_bytes), report.device)
            return result
        return wrapper
    return decorate
