"""The edit out (issue 24.3): the timeline written with OpenTimelineIO reads back with every clip
and its media in place, tracks as long as the video, and narration clips that play the video's
narration sample for sample."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from conftest import FFMPEG, ffprobe
from orchestrator.render import timeline
from orchestrator.servers.dispatch import InProcessInstance, render_all
from orchestrator.render.segments import SegmentCache, plan
from orchestrator.render.stitch import stitch
from orchestrator.graphs.workflow import load_workflow
from podium.engines.script import parse_script
from podium.errors import UsageError

FPS, W, H = 25, 160, 90


def pcm(path, start: float = 0.0, duration: float | None = None) -> np.ndarray:
    """The first audio stream as 48 kHz mono float samples, cut to [start, start + duration)."""
    cut = ["-ss", f"{start:.6f}"] + (["-t", f"{duration:.6f}"] if duration is not None else [])
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), *cut, "-map", "0:a:0", "-ac", "1",
                          "-ar", "48000", "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edit")
    script = parse_script("One short line.\n\nAnd a second one here.")
    values = {("Save video", "fps"): FPS, ("Save video", "intermediate"): True,
              ("Presenter", "width"): W, ("Presenter", "height"): H}
    jobs = plan(load_workflow("direct"), script, values, {})
    clips = render_all(jobs, [InProcessInstance()], SegmentCache(folder / "cache"), lambda *a: None)
    video = folder / "talk.mp4"
    stitch(clips, video, subtitles=True)
    music = folder / "bed.wav"
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=220:duration=30",
                    str(music)], check=True)
    return folder, clips, video, music


def edit_of(clips, music):
    offsets = np.cumsum([0.0] + [c.duration for c in clips])[:-1]
    total = sum(c.duration for c in clips)
    return timeline.Edit(
        fps=FPS, size=(W, H),
        segments=[timeline.Piece(c.path, float(o), c.duration, f"Segment {i + 1}")
                  for i, (c, o) in enumerate(zip(clips, offsets))],
        music=[timeline.Piece(music, 0.0, total, "Music")],
        effects=[timeline.Piece(music, 1.0, 0.5, "ding")],
        captions=[(0.25, 1.2, "One short line.")])


def test_the_otio_reads_back_with_every_piece_in_place(rendered):
    folder, clips, video, music = rendered
    target = timeline.check_target(folder / "talk.otio", video)
    timeline.write(target, edit_of(clips, music))
    read = otio.adapters.read_from_file(str(target))
    video_s = float(ffprobe(video)["format"]["duration"])
    assert [t.name for t in read.tracks] == ["Picture", "Narration", "Music", "Sound effects"]
    for track in read.tracks[:3]:
        assert abs(track.duration().to_seconds() - video_s) <= 1 / FPS, track.name
    for clip in read.find_clips():
        path = clip.media_reference.target_url.removeprefix("file://")
        assert path.startswith(str(folder / "talk_media")) and (folder / path).is_file()
    (effect,) = read.tracks[3].find_clips()
    assert abs(effect.range_in_parent().start_time.to_seconds() - 1.0) <= 1 / FPS
    assert [m.name for m in read.tracks[0].markers] == ["One short line."]
    # the narration clips, played in order, are the segments' narration as joined into the video
    played = np.concatenate([pcm(c.media_reference.target_url.removeprefix("file://"),
                                 c.source_range.start_time.to_seconds(), c.source_range.duration.to_seconds())
                             for c in read.tracks[1].find_clips()])
    joined = np.concatenate([pcm(c.path)[:round(c.duration * 48000)] for c in clips])
    n = min(len(played), len(joined))
    assert abs(len(played) - len(joined)) <= 48000 / FPS and n > 48000
    assert np.allclose(played[:n], joined[:n], atol=1e-4)


def test_fcpxml_through_the_adapter(rendered):
    folder, clips, video, music = rendered
    target = timeline.write(folder / "talk.fcpxml", edit_of(clips, music))
    assert "<fcpxml" in target.read_text()
    assert len(list((folder / "talk_media").iterdir())) == 4  # 2 segments, the music, the marker


@pytest.mark.parametrize("name, message", [
    ("talk.mp4", "is the video itself"),
    ("talk.mov2", "write .otio, .fcpxml or .edl"),
    ("nowhere/talk.otio", "does not exist"),
])
def test_bad_timeline_targets_are_refused_before_rendering(rendered, name, message):
    folder, _, video, _ = rendered
    with pytest.raises(UsageError, match=message):
        timeline.check_target(folder / name, video)


def test_a_users_own_media_folder_is_never_replaced(rendered):
    folder, clips, video, music = rendered
    mine = folder / "mine_media"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="Podium did not make it"):
        timeline.check_target(folder / "mine.otio", video)
    assert (mine / "keep.txt").read_text() == "mine"


def test_segments_are_linked_into_the_media_folder_and_the_users_music_copied(rendered):
    """Data touched once: a rendered segment is not read and written again for the timeline (a
    hard link, the file system allowing), while the user's own music gets its own copy."""
    folder, clips, video, music = rendered
    target = timeline.write(folder / "linked.otio", edit_of(clips, music))
    read = otio.adapters.read_from_file(str(target))
    placed = lambda track: [Path(c.media_reference.target_url.removeprefix("file://"))
                            for c in read.tracks[track].find_clips()]
    assert len(placed(0)) == len(clips)
    for clip, media in zip(clips, placed(0)):
        assert media.parent == folder / "linked_media" and media.samefile(clip.path)
    (bed,) = placed(2)
    assert bed.read_bytes() == music.read_bytes() and not bed.samefile(music)
