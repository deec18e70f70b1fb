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
    modules = ["cli", "comfy_client", "comfy_up", "dispatch", "remote", "segments", "stitch",
               "ui_format", "workflow", "local", "outputs", "progress_view", "progress_json",
               "service.app", "service.cli", "service.metrics", "service.queue", "service.runner",
               "service.schemas", "service.store", "service.uploads", "service.broker", "service.worker",
               "service.worker_api", "soundtrack", "cinema"]
    imports = "; ".join(f"import orchestrator.{m}" for m in modules)
    assert run_python(f"import sys; {imports}; print('torch' in sys.modules)") == "False"


def test_a_draft_video_renders_without_torch(tmp_path):
    code = (
        "import sys; from orchestrator.cli import main; "
        f"rc = main(['generate', '--text', 'No torch here.', '--size', '160x90', '--quiet', "
        f"'--cache-dir', {str(tmp_path / 'cache')!r}, '--out', {str(tmp_path / 'v.mp4')!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    assert run_python(code).splitlines()[-1] == "0 False"
    assert (tmp_path / "v.mp4").stat().st_size > 0
