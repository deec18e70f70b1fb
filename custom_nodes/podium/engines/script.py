"""Scripts: what the presenter says, cut into sentences and segments.

A segment is the unit of work later stages parallelise (one graph run each), so it is cut at
sentence boundaries and kept short enough to render quickly; a sentence is the unit of
subtitles and slide bullets, so its timing comes from the real audio.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Optional

from pydantic import ValidationError

from .. import jsonio
from ..errors import PodiumError, UsageError
from .scene_spec import check_fits, read_scene, scene_parts
from .script_schema import FILE_SHAPE, ScriptFile, ScriptFormatError, format_error

# Words that end in a period without ending a sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "fig",
    "no", "vol", "approx", "dept", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "cf", "al",
}
# A candidate boundary: terminal punctuation (and closing quotes/brackets), then space.
_HEADING = re.compile(r"#{1,6}\s")  # Markdown: "## Slide title", not "#1 rule" or "#hashtag"
_BOUNDARY = re.compile(r"""([.!?…]+["'”’)\]]*)\s+""")
# Marks in the narration that are never spoken: `[sfx: applause]` (a sound effect at that
# point), `[music: calm piano]` (the music for the video, or for its `## section`).
_MARK = re.compile(r"\[\s*(sfx|music)\s*:\s*([^\[\]\n]*?)\s*\]", re.I)
_CUE = "\ue000"  # where an [sfx: ...] mark stood, while sentences are cut (a private-use char)
_PUNCT_AFTER_SPACE = re.compile(r"\s+([.,;:!?…]+)")
# Terminal escape sequences that would leave visible residue once their ESC goes: CSI (ESC [ or
# the one-byte 0x9b, parameters, a final byte: colours, clear screen) and OSC (ESC ] ... BEL or
# ESC \: window titles). Any other ESC goes alone, like every control character.
_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]{0,200}(?:\x07|\x1b\\)")


@dataclass
class SfxCue:
    """A sound effect in a segment: `sentence` (its index in the segment) and `at`, how far
    into it (the share of its words said before, 0: as it starts, 1: as it ends)."""

    sound: str
    sentence: int
    at: float = 0.0


@dataclass
class Segment:
    """One stretch of narration: a few sentences, optionally with its own slide."""

    sentences: list[str]
    title: str = ""
    bullets: list[str] = field(default_factory=list)
    speaker: str = ""
    cues: list[SfxCue] = field(default_factory=list)
    music: str = ""  # this section's music prompt (empty: the script's)
    hold: float = 0.0  # seconds of silence when it has nothing to say (a deck page without notes)
    scene: str = ""  # a [scene: ...] mark's text: the generated shot this narration plays over

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def marked_text(self) -> str:
        """The narration with its [sfx: ...] marks back where they were (what the JSON keeps)."""
        out = []
        for index, sentence in enumerate(self.sentences):
            words = sentence.split()
            for cue in sorted((c for c in self.cues if c.sentence == index), key=lambda c: -c.at):
                k = min(max(int(round(cue.at * len(words))), 0), len(words))
                mark = f"[sfx: {cue.sound}]"
                if k == len(words) and words and index < len(self.sentences) - 1:
                    # the end of a sentence that others follow: inside its final punctuation
                    stem = words[-1].rstrip(".!?…\"'”’)")
                    words[-1] = f"{stem} {mark}{words[-1][len(stem):]}" if stem else f"{mark} {words[-1]}"
                else:
                    words.insert(k, mark)
            out.append(" ".join(words))
        return " ".join(out)


@dataclass
class Script:
    """A whole narration: a title, an optional stage description, and its segments."""

    title: str
    segments: list[Segment]
    stage: str = ""
    music: str = ""  # what the video's music should be (for `--music auto`)

    @property
    def sentences(self) -> list[str]:
        return [s for seg in self.segments for s in seg.sentences]

    def to_dict(self) -> dict:
        """Podium's script JSON; sound cues stay inline in `text`, music prompts are keys
        present only when set."""
        data = {"title": self.title, "stage": self.stage, **({"music": self.music} if self.music else {}),
                "segments": []}
        for s in self.segments:
            item = {"text": s.marked_text, "title": s.title, "bullets": s.bullets, "speaker": s.speaker}
            if s.music:
                item["music"] = s.music
            if s.scene:
                item["scene"] = s.scene
            data["segments"].append(item)
        return data


def take_marks(text: str) -> tuple[str, list[str], list[str]]:
    """(text with each [sfx: X] replaced by a placeholder, the sounds, the [music: X] prompts)."""
    sounds, music = [], []

    def replace(match: re.Match) -> str:
        kind, what = match.group(1).lower(), " ".join(match.group(2).split())
        if kind == "music":
            if what:
                music.append(what)
            return " "
        if not what:
            return " "
        sounds.append(what)
        return f" {_CUE} "

    return _MARK.sub(replace, text), sounds, music


def sentences_with_cues(text: str) -> tuple[list[str], list[tuple[int, float, str]]]:
    """Split narration that may hold [sfx: X] marks: (the spoken sentences, (sentence index,
    share of its words before the mark, sound) for each mark). A mark between sentences goes
    with the next one (as it starts); one after the last sentence, with the last (as it ends)."""
    marked, sounds, _music = take_marks(text)
    sentences, cues, pending = [], [], []
    sound = iter(sounds)
    for raw in split_sentences(marked):
        tokens = raw.split()
        words = [t for t in tokens if t.replace(_CUE, "") and not _PUNCT_AFTER_SPACE.fullmatch(" " + t)]
        count, before = 0, []
        for token in tokens:
            for _ in range(token.count(_CUE)):
                before.append(count)
            if token.replace(_CUE, "") and not _PUNCT_AFTER_SPACE.fullmatch(" " + token):
                count += 1
        clean = _PUNCT_AFTER_SPACE.sub(r"\1", " ".join(raw.replace(_CUE, " ").split())).strip()
        if not words and before:  # only marks: they wait for the next sentence
            pending += [next(sound) for _ in before]
            continue
        index = len(sentences)
        sentences.append(clean)
        cues += [(index, 0.0, name) for name in pending]
        pending = []
        cues += [(index, k / len(words), next(sound)) for k in before]
    if pending and sentences:
        cues += [(len(sentences) - 1, 1.0, name) for name in pending]
    return sentences, cues


def clean_text(text: str) -> str:
    """`text` without control characters (NUL, escape codes, lone surrogates), which no voice
    can speak and which break the tools downstream; tabs, line breaks and the like stay.
    A terminal escape sequence goes whole (`ESC[31m`, not just its ESC)."""
    if str.isprintable(text):  # (a TypeError for what is not text, as before)
        return text
    text = _ESCAPE.sub("", text)
    return "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cs"))


def speakable(sentence: str) -> bool:
    """Whether a voice has a word to say: a letter or a digit. Punctuation and symbols alone
    are not narration ("..." gives no sound; "!!!" would be read out as "exclamation")."""
    return any(c.isalnum() for c in sentence)


def check_speakable(script: Script) -> Script:
    """Refuse a script with not one word to say, the same way whatever its punctuation."""
    if not any(speakable(s) for s in script.sentences):
        raise UsageError("the script has no speakable words, only punctuation or symbols: "
                         "write the narration in words")
    return script


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping abbreviations, initials and decimals whole."""
    text = re.sub(r"\s+", " ", clean_text(text)).strip()
    if not text:
        return []
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start:match.end(1)]
        last_word = re.split(r"[\s(\"'“‘]", before)[-1].rstrip(".").lower()
        following = text[match.end():match.end() + 1]
        # "no" abbreviates only before a number: "No. 5" but "No. It is not."
        abbreviation = last_word in _ABBREVIATIONS and (last_word != "no" or following.isdigit())
        if match.group(1).startswith(".") and (abbreviation or re.fullmatch(r"[a-z]", last_word)):
            continue  # "Dr. Smith", "J. R. R. Tolkien"
        if following and following.islower():
            continue  # "... etc. and more" - a lower-case start is not a new sentence
        sentences.append(before.strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _first_words(sentence: str, limit: int = 6) -> str:
    words = re.sub(r"[.!?…:;,]+$", "", sentence).split()
    return " ".join(words[:limit]) + ("…" if len(words) > limit else "")


def split_script(text: str, max_words: int = 60, title: str = "") -> Script:
    """Cut text into segments at sentence boundaries.

    Blank lines start a new segment; otherwise sentences are packed until a segment would pass
    `max_words`. A leading Markdown heading (`# Title`) becomes the title; `## Heading` lines
    title the segments that follow them (they become slide titles).
    """
    if max_words < 1:
        raise PodiumError("max_words must be at least 1")
    lines = clean_text(text).replace("\r\n", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if not title and first is not None and re.match(r"#\s", lines[first]):
        title, lines = lines[first][1:].strip(), lines[first + 1:]
    segments: list[Segment] = []
    heading, body, music = "", [], {"video": "", "section": ""}

    def close_block() -> None:
        """Pack the sentences gathered under the current heading into segments."""
        joined = " ".join(body)
        _text, _sounds, prompts = take_marks(joined)
        if prompts:  # [music: X]: before any narration the video's, else this section's
            music["video" if not segments and not heading else "section"] = prompts[-1]
        for scene, part in scene_parts(joined):  # a [scene: ...] mark starts a segment
            pack(scene, *sentences_with_cues(part))
        body.clear()

    def pack(scene: str, sentences: list[str], marks: list) -> None:
        """Sentences into segments of up to max_words (each keeps the scene it plays over)."""
        if scene:
            check_fits(read_scene(scene), sum(len(s.split()) for s in sentences))
        current: list[str] = []
        cues: list[SfxCue] = []
        for index, sentence in enumerate(sentences):
            words = len(sentence.split())
            if current and sum(len(s.split()) for s in current) + words > max_words:
                segments.append(Segment(current, title=heading, cues=cues, music=music["section"], scene=scene))
                current, cues = [], []
            cues += [SfxCue(name, len(current), at) for i, at, name in marks if i == index]
            current.append(sentence)
        if current:
            segments.append(Segment(current, title=heading, cues=cues, music=music["section"], scene=scene))

    for line in lines:
        if _HEADING.match(line):
            close_block()
            heading, music["section"] = line.lstrip("#").strip(), ""
        elif not line.strip():
            close_block()
        else:
            body.append(line)
    close_block()
    if not segments:
        raise PodiumError(
            "the script is empty: give the narration, at least one sentence"
        )
    if not title:
        title = _first_words(segments[0].sentences[0])
    for segment in segments:
        segment.title = segment.title or title
        segment.bullets = [_first_words(s, 9) for s in segment.sentences]
    return check_speakable(Script(title=title, segments=segments, music=music["video"]))


def parse_script(raw: str, max_words: int = 60, title: str = "",
                 as_json: Optional[bool] = None) -> Script:
    """Text the user wrote: plain text / Markdown, or Podium's script JSON.

    `as_json` None: JSON when the text starts with "{", or with "[" and parses as JSON (so a
    top-level array is refused, not spoken); True: it must be the JSON (a `.json` file).
    Schema problems are a ScriptFormatError that names the field (`segments[2].bullets`).
    """
    head = raw.lstrip()[:1]
    if as_json is None:
        as_json = head == "{" or (head == "[" and _is_json(raw))
    if not as_json:
        return split_script(raw, max_words=max_words, title=title)
    try:
        data = jsonio.loads(raw)
    except jsonio.JsonInputError as err:  # (deep nesting too: a RecursionError before)
        raise ScriptFormatError(f"{err}; a Podium script JSON is {FILE_SHAPE}") from None
    try:
        parsed = ScriptFile.model_validate(data)
    except ValidationError as err:
        raise format_error(err) from None
    segments = []
    for number, item in enumerate(parsed.segments):
        scene, text = _json_scene(item.scene, item.text, number)
        sentences, marks = sentences_with_cues(text)
        prompts = take_marks(text)[2]
        if scene:
            check_fits(read_scene(scene), sum(len(s.split()) for s in sentences))
        if sentences:
            segments.append(Segment(sentences, title=item.title, bullets=list(item.bullets),
                                    speaker=item.speaker,
                                    cues=[SfxCue(name, i, at) for i, at, name in marks],
                                    music=item.music or (prompts[-1] if prompts else ""), scene=scene))
    if not segments:
        raise ScriptFormatError("no segment has any narration (\"text\")", "segments")
    title = title or parsed.title or _first_words(segments[0].sentences[0])
    for segment in segments:
        segment.title = segment.title or title
        segment.bullets = segment.bullets or [_first_words(s, 9) for s in segment.sentences]
    return check_speakable(Script(title=title, segments=segments, stage=parsed.stage, music=parsed.music))


def _json_scene(scene: str, text: str, number: int) -> tuple[str, str]:
    """(the segment's scene, its text without the mark): its "scene" key, or one [scene: ...]
    mark at the start of its text; a segment has one scene at most."""
    parts = scene_parts(text)
    marked = [s for s, _ in parts if s]
    if len(marked) > 1 or (marked and (scene or parts[0][0] == "")):
        raise ScriptFormatError("holds more than one scene, or narration before its scene mark: a segment "
                                "plays over one shot from its start; split it "
                                "where the next scene starts", f"segments[{number}].text")
    scene = " ".join((scene or (marked[0] if marked else "")).split())
    if scene:
        read_scene(scene)
    return scene, " ".join(t for _, t in parts)


def _is_json(raw: str) -> bool:
    """Whether text starting with "[" is JSON; too big or too deep to parse counts as JSON
    (refused as such, never spoken)."""
    try:
        jsonio.loads(raw)
        return True
    except jsonio.JsonTooLarge:
        return True
    except jsonio.JsonInputError:
        return False
