"""How ComfyUI imports the pack: the repository's root __init__.py (a clone in custom_nodes/,
any folder name) and custom_nodes/podium/__init__.py (--base-directory <repo>) are each loaded
under a path-like module name, as ComfyUI's nodes.load_custom_node does; both hand on the one
module `podium`, so nothing loads twice. Each case runs in a fresh interpreter."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# What ComfyUI 0.3.64 .. 0.38 do for a folder in custom_nodes/ (nodes.load_custom_node).
LOAD_LIKE_COMFYUI = textwrap.dedent("""
    import importlib.util, os, sys
    def load_custom_node(module_path):
        name = module_path.replace(".", "_x_")
        spec = importlib.util.spec_from_file_location(name, os.path.join(module_path, "__init__.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
""")


def run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # `podium` not on sys.path
    return subprocess.run([sys.executable, "-c", LOAD_LIKE_COMFYUI + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def clone_into(custom_nodes: Path, name: str) -> Path:
    clone = custom_nodes / name
    shutil.copytree(REPO, clone, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "tests", "models"))
    return clone


def test_a_clone_under_any_name_and_the_base_directory_share_one_pack(tmp_path):
    clone = clone_into(tmp_path / "custom_nodes", "ComfyUI-Podium.v2")  # dots and dashes
    done = run(f"""
        root = load_custom_node({str(clone)!r})
        inner = load_custom_node({str(clone / "custom_nodes" / "podium")!r})
        import podium
        assert os.path.realpath(podium.__file__) == os.path.realpath({str(clone / "custom_nodes/podium/__init__.py")!r})
        assert root.NODE_CLASS_MAPPINGS is inner.NODE_CLASS_MAPPINGS is podium.NODE_CLASS_MAPPINGS
        assert "PodiumSaveVideo" in root.NODE_CLASS_MAPPINGS and root.NODE_DISPLAY_NAME_MAPPINGS
        cls = root.NODE_CLASS_MAPPINGS["PodiumSaveVideo"]
        assert cls.__module__ == "podium.nodes.output", cls.__module__
        copies = [m for m in sys.modules if m.endswith("nodes.output")]
        assert copies == ["podium.nodes.output"], copies  # one copy of every node module
        assert "torch" not in sys.modules
        print("ok")
    """, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_the_orchestrator_imports_the_script_engine_torch_free(tmp_path):
    done = run(f"""
        sys.path.insert(0, {str(REPO / "custom_nodes")!r})
        from podium.engines.script import parse_script
        assert parse_script("Hello there. Bye.").segments
        assert "torch" not in sys.modules and "numpy" not in sys.modules
        print("ok")
    """, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


def test_another_package_named_podium_is_refused_with_one_line(tmp_path):
    clone = clone_into(tmp_path / "custom_nodes", "podium-repo")
    (tmp_path / "other" / "podium").mkdir(parents=True)
    (tmp_path / "other" / "podium" / "__init__.py").write_text("")
    done = run(f"""
        sys.path.insert(0, {str(tmp_path / "other")!r})
        import podium
        try:
            load_custom_node({str(clone)!r})
        except ImportError as err:
            print(err)
    """, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "another package named 'podium' is already imported from" in done.stdout
    assert str(tmp_path / "other" / "podium") in done.stdout


def _requirement_names(lines) -> list[str]:
    import re

    return [re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower()
            for line in lines if line.strip() and not line.strip().startswith("#")]


def test_requirements_txt_holds_the_packs_dependencies_and_never_torch():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    required = (REPO / "requirements.txt").read_text().splitlines()
    names = _requirement_names(required)
    assert set(_requirement_names(project["project"]["dependencies"])) <= set(names)
    assert not {"torch", "torchvision", "torchaudio", "f5-tts"} & set(names)
    for line in project["project"]["dependencies"]:  # the same bounds in both files
        assert line.split("#")[0].strip() in [r.strip() for r in required], line
    comfy = project["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"]
    assert all((REPO / path).exists() for path in comfy["includes"])


def test_comfyuis_own_parser_reads_the_pyproject():
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not (comfy_dir and Path(comfy_dir, "comfy_config").is_dir()):
        import pytest
        pytest.skip("set COMFYUI_DIR to a ComfyUI source tree")
    done = run(f"""
        sys.path.insert(0, {comfy_dir!r})
        from comfy_config import config_parser
        config = config_parser.extract_node_configuration({str(REPO)!r})
        assert config.tool_comfy.publisher_id == "podium", config
        assert config.project.supported_comfyui_version == ">=0.3.64"
        print("ok")
    """, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
