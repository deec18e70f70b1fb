"""Guided mode: a local LLM served by Ollama writes the script from a topic.

The answer is asked for as structured output (Ollama's `format` = a JSON schema): a title, a
stage description for the image stage, and segments of narration with a slide title, bullets
and, for a dialogue, a speaker. Its length follows the requested duration at the voice's words
per minute. Invalid or truncated answers are retried a bounded number of times; Ollama not
running, a model not pulled or a slow server end in one line that says what to do.

No ComfyUI here; the `ollama` client is imported when a script is written.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from ..errors import PodiumError
from ..files import atomic_write_text
from .script import Script, Segment, _first_words, split_sentences

log = logging.getLogger("podium.llm_script")

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_MODEL = "llama3.2"
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


@dataclass
class OllamaSettings:
    """Where and how to ask Ollama; passed between nodes as PODIUM_OLLAMA."""

    host: str = DEFAULT_HOST
    model: str = DEFAULT_MODEL
    keep_alive: Union[str, float, None] = "5m"  # how long Ollama keeps the model loaded after
    options: dict = field(default_factory=lambda: {"temperature": 0.7, "num_ctx": 8192})
    timeout_s: float = 300.0  # a cold model load on a slow machine takes a while


def script_schema(speakers: Optional[list[str]] = None) -> dict:
    """The structured-output schema; with two or more speakers each segment must name one."""
    speaker: dict = {"type": "string"}
    required = ["slide_title", "narration", "bullets"]
    if speakers and len(speakers) > 1:
        speaker = {"type": "string", "enum": list(speakers)}
        required = ["speaker", *required]
    return {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "stage": {"type": "string"},
            "segments": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "speaker": speaker,
                        "slide_title": {"type": "string"},
                        "narration": {"type": "string"},
                        "bullets": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": required,
                },
            },
        },
        "required": ["title", "stage", "segments"],
    }


SCRIPT_SCHEMA = script_schema()


class _Invalid(Exception):
    """An answer that is not a usable script (worth asking again); str() says why."""


# --- the prompt -------------------------------------------------------------------------

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
        lines.append("Speakers: one presenter speaks all the narration; leave \"speaker\" empty.")
    lines += [
        "",
        "Fields:",
        "- title: the video's title, a few words.",
        "- stage: one or two sentences describing the picture for an image generator: the "
        "presenter (appearance, clothing, framing) and the setting behind them; no text.",
        "- segments, in speaking order, each with: slide_title (a few words); narration (what "
        "is said aloud: complete sentences in plain spoken words, numbers, symbols and "
        "abbreviations spelled out, no Markdown, no stage directions); bullets (2 to 4 short "
        "points that summarise the narration, shown on the slide).",
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


# --- checking an answer -------------------------------------------------------------------

_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _one_line(text: Any, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_answer(content: str, speakers: Optional[list[str]] = None) -> dict:
    """The model's answer as {title, stage, segments: [{narration, slide_title, bullets,
    speaker}]}; raises _Invalid with the reason when it is not a usable script."""
    text = _THINK.sub("", content or "")
    fence = _FENCE.match(text)
    if fence:
        text = fence.group(1)
    if not text.strip():
        raise _Invalid("the answer was empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()) - 1 or "Unterminated" in err.msg:
            raise _Invalid(f"the JSON ends early, cut mid-object ({err.msg})") from None
        raise _Invalid(f"malformed JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(data, dict):
        raise _Invalid(f"the JSON is a {type(data).__name__}, not an object")
    segments = data.get("segments")
    if not isinstance(segments, list) or not segments:
        raise _Invalid("the JSON has no \"segments\" list")
    wanted = {s.lower(): s for s in speakers or []} if speakers and len(speakers) > 1 else {}
    out = []
    for i, seg in enumerate(segments, 1):
        if not isinstance(seg, dict):
            raise _Invalid(f"segment {i} is not an object")
        narration = seg.get("narration")
        if not isinstance(narration, str) or not narration.strip():
            raise _Invalid(f"segment {i} has no narration")
        bullets = seg.get("bullets") or []
        if not isinstance(bullets, list) or not all(isinstance(b, str) for b in bullets):
            raise _Invalid(f"segment {i}'s bullets are not a list of strings")
        title = seg.get("slide_title") or ""
        if not isinstance(title, str):
            raise _Invalid(f"segment {i}'s slide_title is not a string")
        speaker = ""
        if wanted:
            said = seg.get("speaker")
            if not isinstance(said, str) or not said.strip():
                raise _Invalid(f"segment {i} has no speaker (expected one of {', '.join(wanted.values())})")
            speaker = wanted.get(said.strip().lower(), "")
            if not speaker:
                raise _Invalid(f"segment {i}'s speaker {_one_line(said, 40)!r} is not one of "
                               f"{', '.join(wanted.values())}")
        elif speakers:
            speaker = speakers[0]
        out.append({
            "narration": _one_line(narration, len(narration)).lstrip("#").strip(),  # never cut
            "slide_title": _one_line(title, 200).lstrip("#").strip(),
            "bullets": [_one_line(b, 200) for b in bullets if b.strip()],
            "speaker": speaker,
        })
    title, stage = data.get("title"), data.get("stage")
    return {
        "title": _one_line(title, 200).lstrip("#").strip() if isinstance(title, str) else "",
        "stage": _one_line(stage, 2000) if isinstance(stage, str) else "",
        "segments": out,
    }


def count_words(data: dict) -> int:
    return sum(len(seg["narration"].split()) for seg in data["segments"])


def to_script(data: dict, topic: str = "") -> Script:
    """A parsed answer as the Script every later stage consumes."""
    segments = []
    for seg in data["segments"]:
        sentences = split_sentences(seg["narration"])
        if sentences:
            segments.append(Segment(sentences, title=seg["slide_title"],
                                    bullets=list(seg["bullets"]), speaker=seg["speaker"]))
    title = data["title"] or _first_words(topic or segments[0].sentences[0])
    for segment in segments:
        segment.title = segment.title or title
        segment.bullets = segment.bullets or [_first_words(s, 9) for s in segment.sentences]
    return Script(title=title, segments=segments, stage=data["stage"])


# --- talking to Ollama --------------------------------------------------------------------

def display_host(host: str) -> str:
    """The URL the client really uses (it adds a scheme and the default port)."""
    try:
        from ollama._client import _parse_host
        return _parse_host(host or None)
    except Exception:  # a private helper: fall back to what was given
        return host or DEFAULT_HOST


def check_host(host: str) -> str:
    """The host as given (empty: the default), or a PodiumError when it cannot be a URL."""
    host = (host or "").strip() or DEFAULT_HOST
    scheme = host.split("://", 1)[0].lower() if "://" in host else "http"
    if scheme not in ("http", "https") or re.search(r"\s", host) or not re.match(
            r"^(https?://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)?(:\d{1,5})?(/\S*)?$", host, re.I):
        raise PodiumError(f"the Ollama host {host!r} is not a URL: give one like "
                          f"{DEFAULT_HOST} (--ollama-host)")
    return host


def _keep_alive(value):
    """Ollama takes a duration string ("5m") or a number of seconds (negative: forever)."""
    if value is None or isinstance(value, (int, float)):
        return value
    value = str(value).strip()
    if not value:
        return None
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        return value


def _unreachable(settings: OllamaSettings, why: str = "") -> PodiumError:
    return PodiumError(
        f"cannot reach Ollama at {display_host(settings.host)}{f' ({why})' if why else ''}: "
        "start it with `ollama serve` or pass the right --ollama-host"
    )


def _too_slow(settings: OllamaSettings) -> PodiumError:
    return PodiumError(
        f"Ollama at {display_host(settings.host)} did not answer within {settings.timeout_s:g} s "
        f"(model '{settings.model}' may still be loading, or is too slow on this machine): "
        "raise the timeout (timeout_s) or use a smaller model"
    )


def _pulled_models(client) -> list[str]:
    try:
        listing = client.list()
        return [m.model for m in listing.models if m.model]
    except Exception:
        return []


def _response_error(err, settings: OllamaSettings, client) -> Exception:
    """An ollama.ResponseError as what to do about it (an _Invalid when worth retrying)."""
    status, message = getattr(err, "status_code", -1), _one_line(getattr(err, "error", err))
    host = display_host(settings.host)
    if status == 404 and "not found" in message.lower() and "model" in message.lower():
        pulled = _pulled_models(client)
        have = f" (this server has: {', '.join(pulled[:8])})" if pulled else ""
        return PodiumError(f"model '{settings.model}' is not pulled on the Ollama at {host}{have}: "
                           f"run `ollama pull {settings.model}`")
    if status == -1:  # an error inside a streamed answer: the run broke off
        return _Invalid(f"Ollama reported an error mid-answer: {message}")
    if status == 404 or status in (502, 503, 504) or not message or message.startswith("<"):
        # Ollama's own errors are JSON with a message; this is something else (or a proxy)
        said = f" ({message})" if message and not message.startswith("<") else ""
        return PodiumError(f"{host} answered {status} to /api/chat{said}: it does not look like "
                           "an Ollama server; start Ollama with `ollama serve` or pass the right "
                           "--ollama-host")
    if status >= 500:
        return PodiumError(f"Ollama at {host} failed running model '{settings.model}': {message} "
                           f"(status {status}); try a smaller model or see the Ollama server log")
    return PodiumError(f"Ollama at {host} rejected the request for model '{settings.model}': "
                       f"{message} (status {status})")


def _chat_once(client, settings: OllamaSettings, messages: list[dict], format_: dict,
               options: dict, stream: bool) -> str:
    """One chat call; the answer's text, or _Invalid / PodiumError."""
    import httpx
    import ollama

    deadline = time.monotonic() + settings.timeout_s
    kwargs = dict(model=settings.model, messages=messages, format=format_, options=options,
                  keep_alive=_keep_alive(settings.keep_alive))
    try:
        if stream:
            parts, reason, done = [], None, False
            for chunk in client.chat(stream=True, **kwargs):
                parts.append(chunk.message.content or "")
                if chunk.done:
                    done, reason = True, chunk.done_reason
                if time.monotonic() > deadline:
                    raise _too_slow(settings)
            if not done:
                raise _Invalid("the answer stream ended before the model finished (cut mid-answer)")
            content = "".join(parts)
        else:
            response = client.chat(stream=False, **kwargs)
            content, reason = response.message.content or "", response.done_reason
    except ollama.ResponseError as err:
        raise _response_error(err, settings, client) from None
    except httpx.ConnectTimeout:
        raise _unreachable(settings, f"no connection within {settings.timeout_s:g} s") from None
    except httpx.TimeoutException:
        raise _too_slow(settings) from None
    except (ConnectionError, httpx.ConnectError):  # the client turns ConnectError into ConnectionError
        raise _unreachable(settings) from None
    except (httpx.RemoteProtocolError, httpx.ReadError):
        raise _Invalid("the connection was cut mid-answer") from None
    except json.JSONDecodeError:  # a streamed line cut in the middle
        raise _Invalid("the answer stream was cut mid-line") from None
    except httpx.HTTPError as err:
        raise _unreachable(settings, _one_line(err, 120)) from None
    except ValueError as err:  # pydantic's ValidationError: a chunk that is not Ollama's shape
        raise _Invalid(f"an answer that is not Ollama's chat format ({_one_line(err, 120)})") from None
    if reason == "length":
        raise _Invalid("the answer was cut at the model's length limit (done_reason 'length'; "
                       "a larger num_ctx helps)")
    return content


def _ask(client, settings, messages, speakers, attempts: int, stream: bool) -> tuple[str, dict]:
    """Ask until the answer is a valid script, at most `attempts` times."""
    format_ = script_schema(speakers)
    problem = ""
    for attempt in range(attempts):
        options = dict(settings.options or {})
        if attempt and isinstance(options.get("seed"), int) and options["seed"] >= 0:
            options["seed"] += attempt  # a fixed seed would give the same bad answer again
        try:
            content = _chat_once(client, settings, messages, format_, options, stream)
            return content, parse_answer(content, speakers)
        except _Invalid as err:
            problem = str(err)
            log.info("answer %d of %d is not a valid script: %s", attempt + 1, attempts, problem)
    raise PodiumError(f"the model's answer was not a valid script after {attempts} attempt"
                      f"{'s' if attempts != 1 else ''}: {problem}; try a larger model or a "
                      "shorter duration")


def write_script(topic: str, settings: Optional[OllamaSettings] = None, duration_s: float = 60,
                 language: str = "en", audience: str = "", tone: str = "",
                 speakers: Union[str, Iterable[str], None] = None,
                 words_per_minute: float = DEFAULT_WORDS_PER_MINUTE, max_attempts: int = 3,
                 stream: bool = False, length_asks: int = 1) -> Script:
    """Have the Ollama model write a script about `topic` lasting about `duration_s` when
    spoken at `words_per_minute`.

    An invalid or truncated answer is asked again, up to `max_attempts` times. If the
    narration is more than 15% off the target word count, the model is asked up to
    `length_asks` more times to lengthen or shorten it (its answer in the conversation), and
    the closest valid script is kept. Every failure is a PodiumError of one line.
    """
    topic = (topic or "").strip()
    if not topic:
        raise PodiumError("guided mode needs a topic: say what the video is about (--topic \"...\")")
    if duration_s <= 0:
        raise PodiumError(f"the duration must be positive, not {duration_s:g} s")
    if words_per_minute <= 0:
        raise PodiumError(f"words_per_minute must be positive, not {words_per_minute:g}")
    if max_attempts < 1:
        raise PodiumError("max_attempts must be at least 1")
    settings = settings or OllamaSettings()
    if not (settings.model or "").strip():
        raise PodiumError("no Ollama model given: name one (--llm-model, e.g. llama3.2)")
    names = parse_speakers(speakers)
    try:
        import ollama
    except ImportError:
        raise PodiumError("guided mode needs the ollama client: pip install ollama") from None

    settings = replace(settings, host=check_host(settings.host))
    client = ollama.Client(host=settings.host, timeout=settings.timeout_s)
    try:
        messages = build_messages(topic, duration_s, language, audience, tone, names, words_per_minute)
        content, data = _ask(client, settings, messages, names, max_attempts, stream)
        target = target_words(duration_s, words_per_minute)
        best = data
        for _ in range(max(0, length_asks)):
            words = count_words(data)
            if abs(words - target) <= LENGTH_TOLERANCE * target:
                break
            log.info("the script has %d words of narration for a target of %d: asking again",
                     words, target)
            messages = messages + [
                {"role": "assistant", "content": content},
                {"role": "user", "content": _resize_message(words, target, duration_s, words_per_minute)},
            ]
            try:
                content, data = _ask(client, settings, messages, names, 1, stream)
            except PodiumError as err:  # keep the valid script we have
                log.warning("asking for a script of the right length failed: %s", err)
                break
            if abs(count_words(data) - target) < abs(count_words(best) - target):
                best = data
    finally:
        close = getattr(client, "close", None) or getattr(getattr(client, "_client", None), "close", None)
        if close:
            close()
    script = to_script(best, topic)
    log.info("script %r: %d segments, %d words (target %d)", script.title, len(script.segments),
             count_words(best), target_words(duration_s, words_per_minute))
    return script


# --- writing the script for the user ------------------------------------------------------

def script_to_markdown(script: Script) -> str:
    """The script as Markdown that `parse_script` reads back in direct mode: `# Title`, then a
    `## slide title` and a narration paragraph per segment. Bullets, speakers and the stage
    description are not part of that format: they are kept in the JSON (Script.to_dict())."""
    lines = [f"# {_one_line(script.title).lstrip('#').strip()}", ""]
    for segment in script.segments:
        lines += [f"## {_one_line(segment.title or script.title).lstrip('#').strip()}", "",
                  _one_line(segment.text, 1_000_000).lstrip("#").strip(), ""]
    return "\n".join(lines)


def save_script_files(script: Script, stem: Union[str, Path], replace: bool = True) -> tuple[Path, Path]:
    """Write `<stem>.json` (everything; direct mode reads it with --script) and `<stem>.md`;
    `replace=False`: FileExistsError rather than replace a file."""
    stem = Path(stem)
    json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(script.to_dict(), ensure_ascii=False, indent=2) + "\n",
                          replace=replace)
        atomic_write_text(md_path, script_to_markdown(script), replace=replace)
    except FileExistsError:
        raise
    except OSError as err:
        raise PodiumError(f"cannot write the script next to the video ({err}): choose a writable "
                          "output folder") from None
    return json_path, md_path
