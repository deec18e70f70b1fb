"""Profiles (issue 23): `podium profile ...` through the real command line, a real face
detector (OpenCV's Haar cascade) on a real photo (scikit-image's astronaut, public domain),
real ffmpeg, and speech recognition by a tiny random-weight Whisper built here."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, cli_env, draw_portrait, ffprobe, run_cli

skimage_data = pytest.importorskip("skimage.data")
RATE = 24000
CONSENT = "I, Ana Lima, agree that Podium may make videos with my face and voice"


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """An empty data folder and models folder for every CLI run of the test."""
    monkeypatch.setenv("PODIUM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "data" / "profiles"


def photo(path: Path, faces: int = 1, side: int = 0) -> Path:
    from PIL import Image

    face = skimage_data.astronaut()
    image = Image.fromarray(np.concatenate([face] * faces, axis=1) if faces else face)
    (image.resize((side, side)) if side else image).save(path, quality=90)
    return path


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllables of a harmonic voice (100-170 Hz) with the short gaps and longer pauses of speech."""
    rng, parts, count = np.random.default_rng(seed), [], 0
    while sum(map(len, parts)) < seconds * RATE:
        count += 1
        t = np.arange(int(rng.uniform(0.12, 0.28) * RATE)) / RATE
        phase = 2 * np.pi * np.cumsum(rng.uniform(100, 170) * (1 + 0.4 * t)) / RATE
        syllable = sum(np.sin(k * phase) / k for k in range(1, 12)) * np.hanning(len(t))
        parts += [0.25 * syllable / np.abs(syllable).max(),
                  np.zeros(int(RATE * (0.45 if count % 5 == 0 else rng.uniform(0.04, 0.1))))]
    x = np.concatenate(parts)[:int(seconds * RATE)]
    return (x + rng.normal(0, 0.0005, len(x))).astype(np.float32)


def music(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220, 277.2, 329.6, 440))
    return (0.15 * chord * (0.8 + 0.2 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)


def wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as f:
        return f.getnframes() / f.getframerate()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(store: Path) -> list[str]:
    """What is in the store beside finished profiles (temp folders, half-written ones)."""
    return sorted(p.name for p in store.iterdir() if p.name != ".in-use" and not (p / "manifest.json").is_file()) \
        if store.is_dir() else []


def one_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_create_show_export_import_delete(store, tmp_path):
    """Two portraits (a 20-megapixel one downscaled), a 25 s sample trimmed to 10-15 s, the
    consent: stored with a sha256 each, shown, exported to one archive and imported back."""
    big = photo(tmp_path / "big.jpg", side=4480)  # 20 megapixels
    small = photo(tmp_path / "me.jpg")
    sample = wav(tmp_path / "me.wav", speechlike(25))
    code, out, err = run_cli("profile", "create", "ana", "--image", big, "--image", small, "--voice", sample,
                             "--voice-text", "Hello, this is my voice.", "--consent", CONSENT)
    assert code == 0, err
    assert "big.jpg downscaled from 4480x4480 to 2048x2048" in err
    folder = store / "ana"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["images"] == ["images/01.png", "images/02.png"]
    from PIL import Image
    assert Image.open(folder / "images/01.png").size == (2048, 2048)
    assert 10 <= wav_seconds(folder / "voice/sample.wav") <= 15
    for rel, sums in manifest["files"].items():
        assert sha(folder / rel) == sums["sha256"], rel
    assert manifest["consent"]["who"] == "Ana Lima" and manifest["consent"]["text"] == CONSENT
    code, shown, _ = run_cli("profile", "show", "ana")
    assert code == 0
    assert "Hello, this is my voice." in shown and CONSENT in shown and manifest["consent"]["date"] in shown
    assert manifest["files"]["voice/sample.wav"]["sha256"] in shown and "profile set-text ana" in shown
    assert run_cli("profile", "list")[1].split() == ["ana"]

    archive = tmp_path / "ana.zip"
    assert run_cli("profile", "export", "ana", archive)[0] == 0
    assert sorted(zipfile.ZipFile(archive).namelist()) == sorted(["manifest.json", *manifest["files"]])
    code, out, err = run_cli("profile", "delete", "ana")
    assert code == 0 and not folder.exists(), err
    code, out, err = run_cli("profile", "import", archive)
    assert code == 0, err
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert leftovers(store) == []


def test_generate_with_profile_names_it_in_the_video(store, tmp_path):
    """generate --profile: the profile's portrait is the presenter and its sample the voice
    reference (the draft preset speaks with Piper, and says so), and the MP4's metadata carries
    the profile's name and the consent's date; a clash or an unknown profile is one line."""
    sample = wav(tmp_path / "me.wav", speechlike(6))
    assert run_cli("profile", "create", "ana", "--image", photo(tmp_path / "me.jpg"), "--voice", sample,
                   "--voice-text", "Hello, this is my voice.", "--consent", CONSENT)[0] == 0
    date = json.loads((store / "ana/manifest.json").read_text())["consent"]["date"]
    out = tmp_path / "hello.mp4"
    code, _, err = run_cli("generate", "--profile", "ana", "--preset", "draft", "--text", "Hello there.",
                           "--size", "320x240", "--quiet", "--out", out, tmpdir=tmp_path)
    assert code == 0, err
    assert "warning: profile ana's voice sample is not used: the draft preset speaks with Piper" in err
    info = ffprobe(out, count_frames=False)
    assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}
    tags = info["format"]["tags"]
    assert tags["podium_profile"] == "ana" and tags["podium_consent_date"] == date
    code, _, err = run_cli("generate", "--profile", "ana", "--image", photo(tmp_path / "x.jpg"),
                           "--text", "Hi.", "--out", tmp_path / "x.mp4")
    assert code == 2 and "give --profile or --image, not both" in one_error(err)
    code, _, err = run_cli("generate", "--profile", "ana", "--voice-ref", sample, "--preset", "draft",
                           "--text", "Hi.", "--out", tmp_path / "x.mp4")
    assert code == 2 and "brings its voice sample: give --profile or --voice-ref, not both" in one_error(err)
    code, _, err = run_cli("generate", "--profile", "bo", "--text", "Hi.", "--out", tmp_path / "x.mp4")
    assert code == 2 and "no profile named bo" in one_error(err)
    assert not (tmp_path / "x.mp4").exists() and not list((store / ".in-use").iterdir())


def _bad_voice(tmp_path: Path, kind: str) -> Path:
    if kind == "10 minutes":
        path = tmp_path / "long.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=220:d=600:sample_rate=8000",
                        str(path)], check=True)
        return path
    return wav(tmp_path / "v.wav", {"1 s": speechlike(1), "silence": np.zeros(8 * RATE, np.float32),
                                    "music": music(8)}[kind])


@pytest.mark.parametrize("kind, said", [("1 s", "lasts 1.0 s, too short"),
                                        ("10 minutes", "longer than 30 s"),
                                        ("silence", "is silent"),
                                        ("music", "sounds like music")])
def test_unusable_voice_sample_is_one_line_and_nothing_written(store, tmp_path, kind, said):
    code, _, err = run_cli("profile", "create", "ana", "--image", photo(tmp_path / "me.jpg"), "--voice",
                           _bad_voice(tmp_path, kind), "--voice-text", "hello", "--consent", CONSENT)
    assert code == 2 and said in one_error(err)
    assert not (store / "ana").exists() and leftovers(store) == []


@pytest.mark.parametrize("image, said", [("none", "shows no face"), ("two", "shows 2 faces")])
def test_portrait_needs_exactly_one_face(store, tmp_path, image, said):
    picture = draw_portrait(tmp_path / "drawn.png") if image == "none" else photo(tmp_path / "two.jpg", faces=2)
    code, _, err = run_cli("profile", "create", "ana", "--image", photo(tmp_path / "me.jpg"), "--image", picture,
                           "--consent", CONSENT)
    assert code == 2 and said in one_error(err)
    assert not (store / "ana").exists() and leftovers(store) == []


@pytest.mark.parametrize("name", ["a/b", "..", "my name", "a" * 300])
def test_bad_names(store, tmp_path, name):
    code, _, err = run_cli("profile", "create", name, "--image", photo(tmp_path / "me.jpg"), "--consent", CONSENT)
    assert code == 2 and "is not allowed: use 1-64 letters" in one_error(err)
    assert leftovers(store) == [] and not (tmp_path / "data" / "b").exists()


def test_consent_and_existing_name(store, tmp_path):
    me = photo(tmp_path / "me.jpg")
    code, _, err = run_cli("profile", "create", "ana", "--image", me, "--consent", "  ")
    assert code == 2 and "a profile needs consent" in one_error(err)
    assert run_cli("profile", "create", "ana", "--image", me, "--consent", CONSENT)[0] == 0
    before = (store / "ana/manifest.json").read_bytes()
    code, _, err = run_cli("profile", "create", "ana", "--image", me, "--consent", "I, Bo, agree")
    assert code == 2 and "already exists: pass --force" in one_error(err)
    assert (store / "ana/manifest.json").read_bytes() == before
    assert run_cli("profile", "create", "ana", "--image", me, "--consent", "I, Bo, agree", "--force")[0] == 0
    assert json.loads((store / "ana/manifest.json").read_text())["consent"]["who"] == "Bo"
    assert leftovers(store) == []


def test_bad_archives_import_nothing(store, tmp_path):
    """A path escaping the folder (zip slip) and a file whose sha256 differs: refused, nothing written."""
    assert run_cli("profile", "create", "ana", "--image", photo(tmp_path / "me.jpg"), "--consent", CONSENT)[0] == 0
    good = tmp_path / "ana.zip"
    assert run_cli("profile", "export", "ana", good)[0] == 0
    assert run_cli("profile", "delete", "ana")[0] == 0
    manifest = json.loads(zipfile.ZipFile(good).read("manifest.json"))

    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("manifest.json", json.dumps(dict(manifest, files={**manifest["files"], "../evil.txt": {"sha256": "0"}})))
        z.writestr("images/01.png", zipfile.ZipFile(good).read("images/01.png"))
        z.writestr("../evil.txt", "gotcha")
    code, _, err = run_cli("profile", "import", slip)
    assert code == 2 and "would escape the profile's folder" in one_error(err)
    assert not (store / "evil.txt").exists() and not (store.parent / "evil.txt").exists()

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("images/01.png", zipfile.ZipFile(good).read("images/01.png") + b"x")
    code, _, err = run_cli("profile", "import", tampered)
    assert code == 2 and "images/01.png does not match its sha256" in one_error(err)
    assert not (store / "ana").exists() and leftovers(store) == []


def test_a_profile_in_use_is_not_deleted(store, tmp_path):
    """A render holds the profile (its marker) while it runs: delete says so, and works after."""
    assert run_cli("profile", "create", "ana", "--image", photo(tmp_path / "me.jpg"), "--consent", CONSENT)[0] == 0
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        from orchestrator.profiles import profile as profiles
        with profiles.using("ana"):
            print("held", flush=True)
            sys.stdin.read()
        """)], cwd=REPO, env=cli_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli("profile", "delete", "ana")
        assert code == 2 and f"in use by a running render (process {holder.pid})" in one_error(err)
        assert (store / "ana/manifest.json").is_file()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert run_cli("profile", "delete", "ana")[0] == 0
    assert not (store / "ana").exists()


def test_transcript_by_speech_recognition(store, tmp_path):
    """Without --voice-text: no model is one line naming both ways out; with a (tiny, random)
    Whisper installed the transcript is written, stored, shown, and corrected with set-text."""
    me, sample = photo(tmp_path / "me.jpg"), wav(tmp_path / "me.wav", speechlike(6))
    code, _, err = run_cli("profile", "create", "ana", "--image", me, "--voice", sample, "--consent", CONSENT)
    assert code == 2 and "--voice-text" in one_error(err) and "podium models pull whisper-tiny-words" in err
    assert not (store / "ana").exists() and leftovers(store) == []

    from tiny_whisper import build
    build(tmp_path / "models" / "captions" / "whisper-tiny")
    code, out, err = run_cli("profile", "create", "ana", "--image", me, "--voice", sample, "--consent", CONSENT)
    assert code == 0, err
    manifest = json.loads((store / "ana/manifest.json").read_text())
    heard = (store / "ana/voice/transcript.txt").read_text().strip()
    assert heard and manifest["voice"]["transcript_source"] == "written by whisper-tiny-words: check it"
    assert f"transcript (written by whisper-tiny-words: check it): {heard}" in out
    code, out, err = run_cli("profile", "set-text", "ana", "Hello, this is my voice.")
    assert code == 0, err
    assert "transcript (corrected by the user): Hello, this is my voice." in run_cli("profile", "show", "ana")[1]
    manifest = json.loads((store / "ana/manifest.json").read_text())
    assert manifest["files"]["voice/transcript.txt"]["sha256"] == sha(store / "ana/voice/transcript.txt")


def test_help_says_how_to_correct_the_transcript():
    code, out, err = run_cli("profile", "--help")
    assert code == 0, err
    text = " ".join(out.split())
    for action in ("create", "list", "show", "set-text", "delete", "export", "import"):
        assert action in text
    assert 'podium profile set-text NAME "exactly what it says"' in text and "$PODIUM_DATA_DIR" in text
