"""The orchestrator never imports torch, and the draft path does not need it either."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_orchestrator_modules_do_not_import_torch():
    """Every module of the orchestrator, found by walking the package (a new module is checked
    without being listed), imports without loading torch or a model runtime."""
    code = (
        "import pkgutil, sys, importlib, orchestrator\n"
        "names = [m.name for m in pkgutil.walk_packages(orchestrator.__path__, 'orchestrator.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "heavy = sorted({'torch', 'diffusers', 'transformers', 'onnxruntime', 'comfy'} & set(sys.modules))\n"
        "print(len(names), heavy)"
    )
    count, heavy = run_python(code).splitlines()[-1].split(" ", 1)
    assert int(count) >= 30  # the walk found the package (cli, service.app, ...), not nothing
    assert heavy == "[]"


def test_a_draft_video_renders_without_torch(tmp_path):
    code = (
        "import sys; from orchestrator.cli.main import main; "
        f"rc = main(['generate', '--text', 'No torch here.', '--size', '160x90', '--quiet', "
        f"'--cache-dir', {str(tmp_path / 'cache')!r}, '--out', {str(tmp_path / 'v.mp4')!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    assert run_python(code).splitlines()[-1] == "0 False"
    assert (tmp_path / "v.mp4").stat().st_size > 0
