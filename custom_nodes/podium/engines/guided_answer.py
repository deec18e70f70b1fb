"""Checking the model's answer: parsed, bounded and turned into the Script later stages use."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import ValidationError

from .. import jsonio
from ..errors import ScriptFormatError
from .guided_prompt import segment_plan, target_words
from .scene_spec import read_scene
from .script import Script, Segment, SfxCue, _first_words, clean_text, sentences_with_cues
from .script_schema import answer_model, format_error

log = logging.getLogger("podium.guided")


class _Invalid(Exception):
    """An answer that is not a usable script (worth asking again); str() says why."""

@dataclass(frozen=True)
class Limits:
    """How big an answer may be for the video asked for: far more than asked is a runaway."""

    words: int
    segments: int
    chars: int  # of the answer's text
    wire_bytes: int  # read from the server (a streamed answer is an NDJSON line per token)

    @classmethod
    def for_duration(cls, duration_s: float, words_per_minute: float, stream: bool) -> "Limits":
        target = target_words(duration_s, words_per_minute)
        count, _ = segment_plan(target)
        words = 3 * target + 100
        chars = 64 * words + 16_384  # narration, bullets and titles, with JSON's keys
        return cls(words, 3 * count + 5, chars, (64 if stream else 8) * chars + 65_536)


class _TooLong(_Invalid):
    """An answer past the Limits (asked again: a model that ran away may not the next time)."""


_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def one_line(text: Any, limit: int = 200) -> str:
    """The model's text as one line, without control characters or terminal escape sequences
    (they would reach NAME.md and the terminal of whoever reads it)."""
    text = re.sub(r"\s+", " ", clean_text(str(text))).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_answer(content: str, speakers: Optional[list[str]] = None,
                 limits: Optional["Limits"] = None) -> dict:
    """The model's answer as {title, stage, segments: [{narration, slide_title, bullets,
    speaker}]}; raises _Invalid with the reason when it is not a usable script (or, past
    `limits`, far longer than the video asked for)."""
    text = _THINK.sub("", content or "")
    fence = _FENCE.match(text)
    if fence:
        text = fence.group(1)
    if not text.strip():
        raise _Invalid("the answer was empty")
    try:
        data = jsonio.loads(text)
    except jsonio.JsonTooLarge as err:  # (a RecursionError before: a traceback in the node)
        raise _Invalid(f"the JSON {err}") from None
    except jsonio.JsonInputError as failed:
        err = failed.decode_error
        if not isinstance(err, json.JSONDecodeError):
            raise _Invalid(f"the JSON {failed}") from None
        if err.pos >= len(text.rstrip()) - 1 or "Unterminated" in err.msg:
            raise _Invalid(f"the JSON ends early, cut mid-object ({err.msg})") from None
        raise _Invalid(f"malformed JSON ({err.msg} at character {err.pos})") from None
    dialogue = list(speakers) if speakers and len(speakers) > 1 else []
    if limits and isinstance(data, dict) and isinstance(data.get("segments"), list) \
            and len(data["segments"]) > limits.segments:
        raise _TooLong(f"the answer has {len(data['segments']):,} segments, more than the "
                       f"{limits.segments} the video's length allows")
    try:
        answer = answer_model(dialogue).model_validate(data, context={"speakers": dialogue})
    except ValidationError as err:
        raise _Invalid(str(format_error(err, source="the answer"))) from None
    out = []
    for seg in answer.segments:
        out.append({
            "narration": one_line(seg.narration, len(seg.narration)).lstrip("#").strip(),  # never cut
            "slide_title": one_line(seg.slide_title, 200).lstrip("#").strip(),
            "bullets": [one_line(b, 200) for b in seg.bullets if b.strip()],
            "speaker": getattr(seg, "speaker", "") if dialogue else (speakers[0] if speakers else ""),
            **_scene_of(seg.scene, seg.camera),  # a key only where the model gave a shot
        })
    words = sum(len(seg["narration"].split()) for seg in out)
    if limits and words > limits.words:
        raise _TooLong(f"the answer has {words:,} words of narration, more than the "
                       f"{limits.words:,} the video's length allows")
    return {
        "title": one_line(answer.title, 200).lstrip("#").strip(),
        "stage": one_line(answer.stage, 2000),
        "music": one_line(answer.music, 300),
        "segments": out,
        "sound_effects": [{"sound": one_line(e.sound, 100), "sentence": one_line(e.sentence, 300)}
                          for e in answer.sound_effects if e.sound.strip()],
    }


def _scene_of(prompt: str, camera: str) -> dict:
    """{"scene": a mark's text ("a lava lake, push-in")}, or {} for none or one that could not
    be a shot (too long, only a camera move)."""
    prompt = one_line(prompt.replace("[", " ").replace("]", " "), 300).strip(" ,")
    text = prompt if camera == "static" else f"{prompt}, {camera}"
    try:
        read_scene(text)
    except ScriptFormatError:
        return {}
    return {"scene": text}


def count_words(data: dict) -> int:
    return sum(len(seg["narration"].split()) for seg in data["segments"])


def to_script(data: dict, topic: str = "") -> Script:
    """A parsed answer as the Script every later stage consumes."""
    segments = []
    for seg in data["segments"]:
        sentences, marks = sentences_with_cues(seg["narration"])  # a mark the model wrote is not spoken
        if sentences:
            segments.append(Segment(sentences, title=seg["slide_title"],
                                    bullets=list(seg["bullets"]), speaker=seg["speaker"],
                                    cues=[SfxCue(name, i, at) for i, at, name in marks],
                                    scene=seg.get("scene", "")))
    title = data["title"] or _first_words(topic or segments[0].sentences[0])
    for segment in segments:
        segment.title = segment.title or title
        segment.bullets = segment.bullets or [_first_words(s, 9) for s in segment.sentences]
    for effect in data.get("sound_effects", []):
        _place_effect(segments, effect["sound"], effect["sentence"])
    return Script(title=title, segments=segments, stage=data["stage"], music=data.get("music", ""))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _place_effect(segments: list[Segment], sound: str, quote: str) -> None:
    """A suggested sound effect at the start of the sentence whose first words it quotes
    (the first such sentence); one that quotes none is left out."""
    want = _words(quote)[:6]
    if not want:
        return
    for segment in segments:
        for index, sentence in enumerate(segment.sentences):
            if _words(sentence)[:len(want)] == want:
                segment.cues.append(SfxCue(sound, index, 0.0))
                return
    log.info("sound effect %r left out: no sentence starts with %r", sound, quote)
