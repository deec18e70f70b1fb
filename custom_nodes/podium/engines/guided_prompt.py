"""What the model is asked: the structured-output schema, the target length and the messages."""
from __future__ import annotations

import re
from typing import Iterable, Optional, Union

from .scene_spec import MOVES
from .script_schema import answer_schema

# Words per minute of the default Piper voice (joe, medium) with Podium's 0.3 s sentence
# pauses, measured on LLM-style explainer prose: 165 (153 with many numerals, 175 without).
DEFAULT_WORDS_PER_MINUTE = 165
SEGMENT_WORDS = (40, 70)  # words per segment asked for; a segment is one graph run
LENGTH_TOLERANCE = 0.15  # outside ±15% of the target word count, the model is asked again

_LANGUAGES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "ru": "Russian", "uk": "Ukrainian",
    "tr": "Turkish", "ar": "Arabic", "hi": "Hindi", "zh": "Chinese", "ja": "Japanese",
    "ko": "Korean", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish",
    "cs": "Czech", "el": "Greek", "hu": "Hungarian", "ro": "Romanian", "vi": "Vietnamese",
}


def script_schema(speakers: Optional[list[str]] = None) -> dict:
    """The structured-output schema (the pydantic answer model's JSON schema); with two or
    more speakers each segment must name one."""
    return answer_schema(speakers)


SCRIPT_SCHEMA = script_schema()

def target_words(duration_s: float, words_per_minute: float) -> int:
    return max(1, round(duration_s / 60.0 * words_per_minute))


def segment_plan(words: int) -> tuple[int, int]:
    """(number of segments, words per segment) for a total: segments of 40-70 words, ~55."""
    count = max(1, round(words / 55))
    return count, max(1, round(words / count))


def parse_speakers(speakers: Union[str, Iterable[str], None]) -> list[str]:
    """Names from a list or a comma-separated string, stripped, without duplicates."""
    if speakers is None:
        return []
    items = speakers.split(",") if isinstance(speakers, str) else list(speakers)
    names: list[str] = []
    for item in items:
        name = re.sub(r"\s+", " ", str(item)).strip()
        if name and name.lower() not in (n.lower() for n in names):
            names.append(name)
    return names


def _length_line(words: int, duration_s: float, words_per_minute: float) -> str:
    count, per = segment_plan(words)
    return (f"about {words} words of narration in total (the video lasts about "
            f"{duration_s:g} seconds, spoken at {words_per_minute:g} words per minute), "
            f"in {count} segment{'s' if count > 1 else ''} of about {per} words each")


def build_messages(topic: str, duration_s: float = 60, language: str = "en", audience: str = "",
                   tone: str = "", speakers: Optional[list[str]] = None,
                   words_per_minute: float = DEFAULT_WORDS_PER_MINUTE) -> list[dict]:
    """The system and user messages that ask for a script."""
    words = target_words(duration_s, words_per_minute)
    lang = _LANGUAGES.get(language.strip().lower(), language.strip() or "English")
    lines = [
        f"Write the script of a short narrated video about: {topic.strip()}",
        "",
        f"Language: write the title, slide titles, bullets and narration in {lang}.",
    ]
    if audience.strip():
        lines.append(f"Audience: {audience.strip()}.")
    if tone.strip():
        lines.append(f"Tone: {tone.strip()}.")
    lines.append(f"Length: {_length_line(words, duration_s, words_per_minute)} "
                 f"(between {SEGMENT_WORDS[0]} and {SEGMENT_WORDS[1]} words per segment).")
    if speakers and len(speakers) > 1:
        names = ", ".join(speakers[:-1]) + " and " + speakers[-1]
        lines.append(f"Speakers: a dialogue between {names}. Each segment is spoken by one of "
                     "them (its \"speaker\", exactly as written here); they take turns and "
                     "answer each other.")
    else:
        lines.append("Speakers: one presenter speaks all the narration.")
    lines += [
        "",
        "Fields:",
        "- title: the video's title, a few words.",
        "- stage: one or two sentences describing the picture for an image generator: the "
        "presenter (appearance, clothing, framing) and the setting behind them; no text.",
        "- segments, in speaking order, each with: slide_title (a few words); narration (what "
        "is said aloud: complete sentences in plain spoken words, numbers, symbols and "
        "abbreviations spelled out, no Markdown, no stage directions); bullets (2 to 4 short "
        "points that summarise the narration, shown on the slide); scene (optional, usually "
        "\"\": a short description of a generated video shot shown instead of the slide while "
        "this narration plays, e.g. \"a lava lake glowing at night\"; add \"with the presenter\" "
        "to show the presenter in it); camera (the shot's camera move, one of "
        f"{', '.join(MOVES)}).",
        "- music: the background music that suits the video, for a music generator: genre, "
        "instruments, mood, tempo (e.g. \"calm ambient piano, slow, warm\"); no lyrics.",
        "- sound_effects: usually none ([]); at most a few where a sound truly helps, each with "
        "sound (what is heard, e.g. \"applause\") and sentence (the first words of the "
        "narration sentence it plays with, copied exactly).",
    ]
    system = ("You write scripts for short narrated videos: a presenter speaks the narration "
              "while slides show a title and a few bullets. Answer with JSON only, following "
              "the given schema.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def _resize_message(words: int, target: int, duration_s: float, words_per_minute: float) -> str:
    how = "longer" if words < target else "shorter"
    return (f"That script has {words} words of narration, but it needs "
            f"{_length_line(target, duration_s, words_per_minute)}. Rewrite the whole script "
            f"{how}, on the same topic and in the same JSON form.")
