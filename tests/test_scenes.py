"""Scene shots (issue 24, part 1): `[scene: ...]` marks cut a script into segments that play over
a generated shot; the tiny random-weight Wan 2.2 TI2V pipeline makes the shots through the real
diffusers loader, the presenter stays in its PiP box on top, and each shot spans exactly its
narration (decoded frames); the CPU draft shows moving title cards; bad marks are one line
before any work, with nothing written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
from conftest import FFMPEG, draw_portrait, ffprobe, listing, parse_srt, run_cli, streams  # noqa: E402
from tiny_wan_i2v import build as build_wan  # noqa: E402

from orchestrator.render import scenes  # noqa: E402
from orchestrator.servers.dispatch import InProcessInstance, render_all  # noqa: E402
from orchestrator.render.lecture import layout_graph  # noqa: E402
from orchestrator.render.segments import SegmentCache, plan  # noqa: E402
from orchestrator.render.stitch import stitch  # noqa: E402
from orchestrator.graphs.workflow import find_node, load_workflow  # noqa: E402
from podium.engines import scene as engine  # noqa: E402
from podium.engines.compose import Pip  # noqa: E402
from podium.engines.scene_spec import read_scene  # noqa: E402
from podium.engines.script import parse_script  # noqa: E402
from podium.engines.presenter import SlideDeck  # noqa: E402
from podium.errors import ScriptFormatError  # noqa: E402
from podium.memory import get_manager  # noqa: E402

W, H, FPS = 160, 96, 25
FACE = np.array([215, 165, 135])  # draw_portrait's face colour
SCRIPT = ("# Volcanoes\nVolcanoes are openings in the crust.\n\n"
          "[scene: a lava lake glowing at night, slow push-in]\nThe lava glows deep orange.\n\n"
          "Ash can fall far away.\n\n"
          "[scene: ash clouds over a small town, pan left] Whole towns are covered.")


def test_scene_marks_cut_segments_and_ride_in_the_script_json():
    text = "Intro here. [scene: a lava lake, push-in] It glows. It moves. [scene: a town with the presenter, tilt up, 2s] Ash falls. People leave."
    script = parse_script(text)
    assert [s.scene for s in script.segments] == ["", "a lava lake, push-in",
                                                  "a town with the presenter, tilt up, 2s"]
    assert [s.sentences for s in script.segments] == [["Intro here."], ["It glows.", "It moves."],
                                                      ["Ash falls.", "People leave."]]
    assert read_scene(script.segments[2].scene) == engine.SceneSpec("a town with the presenter", "tilt up", True, 2.0)
    assert read_scene("a cave, very slow zoom out").move == "pull-out"
    assert read_scene("a cave, dark").move == "static" and read_scene("a cave, dark").prompt == "a cave, dark"
    again = parse_script(json.dumps(script.to_dict()))  # what each segment's run reads
    assert [s.scene for s in again.segments] == [s.scene for s in script.segments]
    assert "[scene" not in json.dumps(script.to_dict()["segments"][1]["text"])
    inline = parse_script(json.dumps({"segments": [{"text": "[scene: a cave, pan right] Dark in here."}]}))
    assert inline.segments[0].scene == "a cave, pan right" and inline.segments[0].text == "Dark in here."


@pytest.mark.parametrize("text, message", [
    ("[scene:   ] Hello there.", "has no prompt"),
    ("[scene: , push-in] Hello there.", "has no prompt"),
    ("[scene: " + "lava " * 999 + "lava.] Hello there.", "5000 characters"),
    ("[scene: a [scene: b] c] Hello there.", "cannot be nested"),
    ("[sfx: boom [scene: b]] Hello there.", "inside another mark"),
    ("[scene: a lava lake Hello there.", "is not closed"),
    ("Hello there.\n[scene: a lava lake]\n\nMore words.", "has no narration after it"),
    ("[scene: a lava lake, 12s] Two words.", r"asks for 12 s but its narration \(2 words\)"),
])
def test_bad_scene_marks_are_one_line(text, message):
    with pytest.raises(ScriptFormatError, match=message) as caught:
        parse_script(text)
    assert "\n" not in str(caught.value)


def test_a_json_segment_holds_one_scene():
    two = json.dumps({"segments": [{"text": "[scene: a] One. [scene: b] Two."}]})
    with pytest.raises(ScriptFormatError, match=r"segments\[0\]\.text: holds more than one scene"):
        parse_script(two)


def test_title_cards_move_and_never_freeze():
    for move in ("push-in", "pull-out", "pan left", "pan right", "tilt up", "tilt down", "static"):
        spec = read_scene(f"a lava lake, {move}")
        shot = engine.make_shot(spec, 4.0, W, H, [])
        assert "title card" in shot.generator and move in shot.generator
        frames = [shot.visual.render(t).astype(np.int16) for t in (0.0, 1.0, 2.0, 3.0)]
        assert all(f.shape == (H, W, 3) for f in frames)
        for a, b in zip(frames, frames[1:]):  # moving throughout, not frozen
            assert np.abs(a - b).mean() > 0.2, move
        colour = np.median(frames[0].reshape(-1, 3), axis=0)
        assert np.abs(colour - engine.TITLE_BACKGROUND).max() <= 20


def test_a_generator_that_cannot_run_is_named_and_the_next_one_used():
    spec = read_scene("a cave, pan right")
    shot = engine.make_shot(spec, 2.0, W, H, [("video", lambda: "no GPU here"),
                                              ("still", lambda: engine.MovingStill(np.zeros((8, 8, 3), np.uint8),
                                                                                   spec.move, 2.0, W, H))])
    assert isinstance(shot.visual, engine.MovingStill)
    assert shot.generator == "scene 'a cave': still (not video: no GPU here)"


def _frames(path: Path) -> np.ndarray:
    done = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint8).reshape(-1, H, W, 3)


def _is_slide(frame: np.ndarray) -> bool:
    """The slide's own background over the lower left, where no text is."""
    region = frame[H // 2:H - 24, : W // 2].reshape(-1, 3).astype(int)
    return bool(np.abs(np.median(region, axis=0) - SlideDeck.BACKGROUND).max() <= 14)


def _face_share(frame: np.ndarray, rect) -> float:
    x, y, w, h = rect
    box = frame[y:y + h, x:x + w].astype(int)
    return float((np.abs(box - FACE).max(axis=-1) <= 45).mean())


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    folder = build_wan(tmp_path_factory.mktemp("wan") / "Wan2.2-TI2V-5B-Diffusers")
    yield folder
    get_manager().evict()


def test_tiny_wan_shots_span_their_narration_with_the_presenter_on_top(wan, tmp_path):
    """PiP draft graph + Scene node on the tiny Wan: each scene segment shows its generated shot
    from its first frame to its last (within one frame of the narration's span), the slides
    elsewhere, and the portrait stays in the corner box over both."""
    script = parse_script(SCRIPT)
    assert [bool(s.scene) for s in script.segments] == [False, True, False, True]
    pip = Pip(size=0.4)
    graph = layout_graph(load_workflow("direct"), "pip", pip, (W, H), 2.0, deck=False)
    graph = scenes.scene_graph(graph, (W, H), 0, scenes.OFF, scenes.OFF)
    scene = graph[find_node(graph, "Scene")]["inputs"]
    assert graph[scene["fallback"][0]]["_meta"]["title"] == "Deck slides"  # the slides where no scene
    scene.update(model_folder=str(wan), steps=2, resolution=64, clip_seconds=0.5)
    portrait = draw_portrait(tmp_path / "me.png", 120, 144)
    values = {("Save video", "fps"): FPS, ("Save video", "intermediate"): True, ("Presenter", "portrait_path"): str(portrait),
              ("Presenter", "width"): pip.box_size(W, H)[0], ("Presenter", "height"): pip.box_size(W, H)[1]}
    jobs = plan(graph, script, values, {})
    clips = render_all(jobs, [InProcessInstance()], SegmentCache(tmp_path / "cache"), lambda *a: None)
    out = tmp_path / "v.mp4"
    stitch(clips, out, subtitles=True)
    info = ffprobe(out)
    (video,), (audio,) = streams(info, "video"), streams(info, "audio")
    assert abs(video["duration"] - audio["duration"]) <= 1 / FPS
    frames = _frames(out)
    bounds = np.cumsum([0] + [c.frames for c in clips])  # each segment's first frame
    slide = [_is_slide(f) for f in frames]
    for index, segment in enumerate(script.segments):
        first, last = bounds[index], bounds[index + 1] - 1
        want = not segment.scene
        # every frame of the span but (at most) one at either end shows what the segment asks for
        assert all(s == want for s in slide[first + 1:last]), (index, slide[first:last + 1])
        assert slide[first] == want or slide[first + 1] == want
    rect = (W - pip.margin - pip.box_size(W, H)[0], pip.margin, *pip.box_size(W, H))
    for index in (1, 3):  # the presenter in its box over the shots too
        middle = frames[(bounds[index] + bounds[index + 1]) // 2]
        assert _face_share(middle, rect) > 0.1
    # the shot itself shows in the rest of the frame (a random-weight shot's colours are arbitrary,
    # so it is told by its own pixels: two prompts, two different shots there)
    shot_a, shot_b = frames[bounds[1] + 2].astype(int), frames[bounds[3] + 2].astype(int)
    assert np.abs(shot_a - shot_b)[H // 2:, : W // 2].mean() > 2  # two prompts, two shots


def test_draft_cli_shows_moving_title_cards_for_their_narration(tmp_path):
    """`podium generate --preset draft` (no models): a title card of each scene's prompt, moving,
    for its narration; the slides elsewhere; both streams agree within a frame."""
    (tmp_path / "talk.md").write_text(SCRIPT)
    rc, out, err = run_cli("generate", "--script", "talk.md", "--preset", "draft", "--size", f"{W}x{H}",
                           "--out", "v.mp4", "--quiet", cwd=tmp_path, tmpdir=tmp_path / "scratch")
    assert rc == 0, err
    info = ffprobe(tmp_path / "v.mp4")
    (video,), (audio,) = streams(info, "video"), streams(info, "audio")
    assert abs(video["duration"] - audio["duration"]) <= 1 / FPS
    frames = _frames(tmp_path / "v.mp4")
    cues = parse_srt(tmp_path / "v.srt")
    card = lambda f: np.abs(np.median(f[H // 2:, : W // 2].reshape(-1, 3).astype(int), axis=0)
                            - engine.TITLE_BACKGROUND).max() <= 20
    for start, end, text in cues:
        middle = frames[int((start + end) / 2 * FPS)]
        assert card(middle) == (text in ("The lava glows deep orange.", "Whole towns are covered.")), text
        assert _is_slide(middle) == (not card(middle)), text
    start, end, _ = cues[1]
    a, b = frames[int(start * FPS) + 1].astype(int), frames[int(end * FPS) - 1].astype(int)
    assert np.abs(a - b).mean() > 1  # the push-in moved the card


@pytest.mark.parametrize("text, message", [
    ("[scene: ] Hello there.", "has no prompt"),
    ("[scene: " + "x" * 5000 + "] Hello there.", "5000 characters"),
    ("[scene: a [scene: b]] Hello there.", "cannot be nested"),
    ("[scene: a lava lake Hello there.", "is not closed"),
    ("[scene: a lava lake, 20s] Hello there.", "asks for 20 s"),
])
def test_bad_scene_marks_stop_the_cli_in_one_line_and_write_nothing(tmp_path, text, message):
    (tmp_path / "talk.txt").write_text(text)
    before = listing(tmp_path)
    rc, out, err = run_cli("generate", "--script", "talk.txt", "--preset", "draft", "--out", "v.mp4", "--quiet",
                           cwd=tmp_path, tmpdir=tmp_path / "scratch")
    assert rc == 2, err
    assert message in err and err.strip().count("\n") == 0, err
    after = {k: v for k, v in listing(tmp_path).items() if not k.startswith("scratch")}
    assert after == {k: v for k, v in before.items() if not k.startswith("scratch")}


def _speech(segments: int, seconds: float = 1.0):
    from podium.engines.speech import Speech

    rate = 16000
    bounds = [(i * seconds, (i + 1) * seconds) for i in range(segments)]
    return Speech(np.zeros(int(rate * seconds * segments), np.float32), rate, [], bounds)


def test_the_scene_node_says_which_generator_made_each_shot(wan, tmp_path):
    """With the presenter: image-to-video on the portrait; a registry model that is not there
    (or not on a GPU) is passed over by name and the title card made."""
    from podium.engines.presenter import PortraitMotion, load_image
    from podium.nodes.scene import PodiumScene

    script = parse_script("[scene: a lecture hall with the presenter, push-in] Welcome in. "
                          "[scene: a lava lake, pan left] It glows.")
    presenter = PortraitMotion(load_image(draw_portrait(tmp_path / "me.png", 120, 144)), W, H)
    visual, lines = PodiumScene().make(script, _speech(2), W, H, scenes.OFF, scenes.OFF, 0, 2, 64, 0.5,
                                       presenter=presenter, model_folder=str(wan))
    assert lines.splitlines() == ["scene 'a lecture hall with the presenter': Wan 2.2 TI2V image-to-video "
                                  "on the presenter, looped with a cross-fade",
                                  "scene 'a lava lake': Wan 2.2 TI2V text-to-video, looped with a cross-fade"]
    assert visual.render(0.5).shape == (H, W, 3)
    assert np.abs(visual.render(0.5).astype(int) - visual.render(1.5)).mean() > 2  # two shots
    _, lines = PodiumScene().make(script, _speech(2), W, H, "wan2.2-ti2v-5b", scenes.OFF, 0, 2, 64, 0.5)
    assert all("title card with the camera" in line and "(not Wan 2.2 TI2V" in line for line in lines.splitlines())


def test_without_a_video_model_a_still_from_the_image_model_moves(tmp_path):
    """No video model: the tiny random-weight SD1.5 (diffusers' real loader) draws a still, shown
    with the camera move (Ken Burns), never frozen."""
    from test_presenter_image import build_sd15

    from podium.nodes.scene import PodiumScene

    folder = build_sd15(tmp_path / "sd15")
    script = parse_script("[scene: a lava lake, pull-out] It glows and moves.")
    try:
        visual, line = PodiumScene().make(script, _speech(1, 2.0), W, H, scenes.OFF, scenes.OFF, 0, 2, 64, 0.5,
                                          image_model_folder=str(folder))
    finally:
        get_manager().evict()
    assert line == "scene 'a lava lake': a text-to-image still with the camera pull-out"
    shot = visual.shots[0]
    assert isinstance(shot, engine.MovingStill)
    frames = [visual.render(t).astype(int) for t in (0.1, 1.0, 1.9)]
    assert all(np.abs(a - b).mean() > 0.5 for a, b in zip(frames, frames[1:]))


def test_full_layout_shows_the_shot_full_frame_without_the_presenter(tmp_path):
    """`--layout full` (the default) with a portrait: a scene's narration plays over its shot
    alone (no presenter picture); the other segments show the presenter."""
    (tmp_path / "talk.md").write_text(SCRIPT)
    draw_portrait(tmp_path / "me.png", 120, 144)
    rc, out, err = run_cli("generate", "--script", "talk.md", "--image", "me.png", "--preset", "draft",
                           "--size", f"{W}x{H}", "--out", "v.mp4", "--quiet", cwd=tmp_path, tmpdir=tmp_path / "scratch")
    assert rc == 0, err
    frames = _frames(tmp_path / "v.mp4")
    whole = (0, 0, W, H)
    for start, end, text in parse_srt(tmp_path / "v.srt"):
        middle = frames[int((start + end) / 2 * FPS)]
        scene_cue = text in ("The lava glows deep orange.", "Whole towns are covered.")
        assert (_face_share(middle, whole) < 0.02) == scene_cue, text  # the face: about 0.07
