"""Guided mode: a local LLM served by Ollama writes the script from a topic.

The answer is asked for as structured output (Ollama's `format` = a JSON schema): a title, a
stage description for the image stage, and segments of narration with a slide title, bullets
and, for a dialogue, a speaker. Its length follows the requested duration at the voice's words
per minute. Invalid or truncated answers are retried a bounded number of times; Ollama not
running, a model not pulled or a slow server end in one line that says what to do.

No ComfyUI here; the `ollama` client is imported when a script is written.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from pydantic import ValidationError

from .. import jsonio
from ..errors import PodiumError
from ..files import atomic_write_text
from .script import Script, Segment, SfxCue, _first_words, clean_text, sentences_with_cues
from .script_schema import answer_model, answer_schema, format_error

log = logging.getLogger("podium.guided")

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
    timeout_s: float = 300.0  # for each whole answer: a cold model load on a slow machine takes a while
    cli: bool = False  # messages name the CLI's flags (--llm-timeout) instead of the node's inputs


def script_schema(speakers: Optional[list[str]] = None) -> dict:
    """The structured-output schema (the pydantic answer model's JSON schema); with two or
    more speakers each segment must name one."""
    return answer_schema(speakers)


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
        "points that summarise the narration, shown on the slide).",
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


# --- checking an answer -------------------------------------------------------------------

_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def _one_line(text: Any, limit: int = 200) -> str:
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
            "narration": _one_line(seg.narration, len(seg.narration)).lstrip("#").strip(),  # never cut
            "slide_title": _one_line(seg.slide_title, 200).lstrip("#").strip(),
            "bullets": [_one_line(b, 200) for b in seg.bullets if b.strip()],
            "speaker": getattr(seg, "speaker", "") if dialogue else (speakers[0] if speakers else ""),
        })
    words = sum(len(seg["narration"].split()) for seg in out)
    if limits and words > limits.words:
        raise _TooLong(f"the answer has {words:,} words of narration, more than the "
                       f"{limits.words:,} the video's length allows")
    return {
        "title": _one_line(answer.title, 200).lstrip("#").strip(),
        "stage": _one_line(answer.stage, 2000),
        "music": _one_line(answer.music, 300),
        "segments": out,
        "sound_effects": [{"sound": _one_line(e.sound, 100), "sentence": _one_line(e.sentence, 300)}
                          for e in answer.sound_effects if e.sound.strip()],
    }


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
                                    cues=[SfxCue(name, i, at) for i, at, name in marks]))
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


# --- where Ollama is ----------------------------------------------------------------------

HOSTS_ENV = "PODIUM_OLLAMA_HOSTS"  # inside ComfyUI: the Ollama hosts a graph may use ("*": any)
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_HOSTNAME = re.compile(r"^[A-Za-z0-9._-]+$")
NOT_ALLOWED = ("this ComfyUI server asks only the Ollama hosts its operator allows (by default the "
               f"Ollama on this machine, {DEFAULT_HOST}): leave host at its default, or ask the "
               f"operator to add yours to {HOSTS_ENV}")


def normalize_host(host: str) -> str:
    """The base URL for a host as Ollama's own clients read it: http unless a scheme is given,
    port 11434 unless one is given (80/443 for an explicit http:// / https:// URL), no
    trailing slash. ValueError when it cannot be an Ollama URL."""
    host = (host or "").strip() or DEFAULT_HOST
    if re.search(r"\s", host):
        raise ValueError("whitespace in the host")
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest, port = "http", host, 11434
    else:
        scheme = scheme.lower()
        port = {"http": 80, "https": 443}.get(scheme)
        if port is None:
            raise ValueError(f"scheme {scheme!r}")
    split = urllib.parse.urlsplit(f"{scheme}://{rest}")
    if split.query or split.fragment or "@" in split.netloc:
        raise ValueError("a query, fragment or user name")
    name = split.hostname or "127.0.0.1"
    port = split.port or port  # ValueError for a port that is not a number in range
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        if not _HOSTNAME.match(name):
            raise ValueError(f"host name {name!r}") from None
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}" + (f"/{path}" if path else "")


def display_host(host: str) -> str:
    """The URL the client really uses (with its scheme and port), or what was given."""
    try:
        return normalize_host(host)
    except ValueError:
        return host or DEFAULT_HOST


def check_host(host: str) -> str:
    """The host's base URL (empty: the default), or a PodiumError when it cannot be a URL."""
    try:
        return normalize_host(host)
    except ValueError:
        raise PodiumError(f"the Ollama host {host.strip()!r} is not a URL: give one like "
                          f"{DEFAULT_HOST} (--ollama-host)") from None


def allowed_hosts() -> Optional[frozenset]:
    """The base URLs a graph may send to inside ComfyUI (None: any, `PODIUM_OLLAMA_HOSTS=*`):
    the hosts in $PODIUM_OLLAMA_HOSTS (comma-separated), else Ollama on this machine (and
    $OLLAMA_HOST, where the operator runs it)."""
    raw = os.environ.get(HOSTS_ENV, "").strip()
    if raw == "*":
        return None
    entries = [e.strip() for e in raw.split(",") if e.strip()] if raw else \
        [f"{h}:11434" for h in _LOOPBACK] + [os.environ.get("OLLAMA_HOST", "").strip() or DEFAULT_HOST]
    allowed = set()
    for entry in entries:
        try:
            allowed.add(normalize_host(entry))
        except ValueError:
            log.warning("%s: %r is not an Ollama URL, ignored", HOSTS_ENV, entry)
    return frozenset(allowed)


def confine_host(host: str) -> str:
    """Inside ComfyUI (a graph comes from anyone who reaches the server): the host's URL when
    the operator allows it, else one neutral PodiumError that says nothing of the host."""
    url = check_host(host)
    allowed = allowed_hosts()
    if allowed is not None and url not in allowed:
        raise PodiumError(NOT_ALLOWED)
    return url


# --- talking to Ollama --------------------------------------------------------------------

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


def _names(settings: OllamaSettings) -> dict:
    """How the user sets each thing: the CLI's flags, or the node's inputs."""
    if settings.cli:
        return {"host": "--ollama-host", "timeout": "--llm-timeout", "model": "--llm-model"}
    return {"host": "host (Podium Ollama Settings)", "timeout": "timeout_s", "model": "model"}


def _unreachable(settings: OllamaSettings, why: str = "") -> PodiumError:
    return PodiumError(
        f"cannot reach Ollama at {display_host(settings.host)}{f' ({why})' if why else ''}: "
        f"start it with `ollama serve` or pass the right {_names(settings)['host']}"
    )


def _too_slow(settings: OllamaSettings) -> PodiumError:
    return PodiumError(
        f"Ollama at {display_host(settings.host)} did not answer within {settings.timeout_s:g} s "
        f"(model '{settings.model}' may still be loading, or is too slow on this machine): "
        f"raise the timeout ({_names(settings)['timeout']}) or use a smaller model"
    )


def _not_ollama(settings: OllamaSettings, status: Optional[int] = None) -> PodiumError:
    answered = f"answered {status} to /api/chat" if status else "answered /api/chat with something other than Ollama's JSON"
    return PodiumError(
        f"the server at {display_host(settings.host)} {answered}: it is not an Ollama server; "
        f"start Ollama with `ollama serve` or pass the right {_names(settings)['host']}"
    )


def _pulled_models(client) -> list[str]:
    try:
        listing = client.list()
        return [m.model for m in listing.models if m.model]
    except Exception:
        return []


def _response_error(err, settings: OllamaSettings, client) -> Exception:
    """An ollama.ResponseError as what to do about it (an _Invalid when worth retrying).
    The server's own words are read, never repeated: they can be anything."""
    status, said = getattr(err, "status_code", -1), str(getattr(err, "error", "")).lower()
    host = display_host(settings.host)
    if status == 404 and "not found" in said and "model" in said:
        pulled = _pulled_models(client)
        have = f" (this server has: {', '.join(_one_line(m, 60) for m in pulled[:8])})" if pulled else ""
        return PodiumError(f"model '{settings.model}' is not pulled on the Ollama at {host}{have}: "
                           f"run `ollama pull {settings.model}`")
    if status == -1:  # an error inside a streamed answer: the run broke off
        return _Invalid("Ollama reported an error mid-answer (its log says which)")
    if status in (404, 405) or 300 <= status < 400 or status in (502, 503, 504) or said.startswith("<"):
        return _not_ollama(settings, status)  # Ollama's own errors are JSON; this is something else
    if status >= 500:
        return PodiumError(f"Ollama at {host} failed running model '{settings.model}' (status "
                           f"{status}): see the Ollama server log, or try a smaller model")
    return PodiumError(f"Ollama at {host} rejected the request for model '{settings.model}' "
                       f"(status {status}): see the Ollama server log")


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


class _Guard:
    """One deadline for a whole chat call and a cap on the bytes it reads (reset per call)."""

    def __init__(self, max_bytes: int = 1 << 62):
        self.deadline, self.max_bytes, self.read = float("inf"), max_bytes, 0

    def restart(self, timeout_s: float) -> "_Guard":
        self.deadline, self.read = time.monotonic() + timeout_s, 0
        return self

    def left(self, request=None) -> float:
        import httpx

        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpx.ReadTimeout("the deadline of the whole call has passed", request=request)
        return left


def _guarded_transport(guard: _Guard):
    """An httpx transport that keeps every request within the guard's deadline and bytes."""
    import httpx

    class Stream(httpx.SyncByteStream):
        def __init__(self, inner, request):
            self.inner, self.request = inner, request

        def __iter__(self):
            for chunk in self.inner:
                guard.read += len(chunk)
                if guard.read > guard.max_bytes:
                    raise _TooLong(f"the answer is over {guard.max_bytes // 1000:,} KB")
                guard.left(self.request)
                yield chunk

        def close(self):
            self.inner.close()

    class Transport(httpx.BaseTransport):
        def __init__(self):
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request):
            left = guard.left(request)
            timeouts = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {k: left if timeouts.get(k) is None else min(timeouts[k], left)
                                             for k in ("connect", "read", "write", "pool")}
            response = self.inner.handle_request(request)
            return httpx.Response(response.status_code, headers=response.headers,
                                  stream=Stream(response.stream, request), extensions=response.extensions)

        def close(self):
            self.inner.close()

    return Transport()


def _within(deadline: float, work):
    """work() in a helper thread, given up at the deadline (a server that drips bytes never
    trips a per-read timeout). The helper ends at its next read: the guard stops it."""
    box: dict = {}

    def run():
        try:
            box["value"] = work()
        except BaseException as err:  # handed to the caller
            box["error"] = err

    worker = threading.Thread(target=run, name="podium-ollama-chat", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]


def _chat_once(client, settings: OllamaSettings, messages: list[dict], format_: dict,
               options: dict, stream: bool, guard: Optional[_Guard] = None,
               limits: Optional[Limits] = None) -> str:
    """One chat call within one deadline; the answer's text, or _Invalid / PodiumError."""
    import httpx
    import ollama

    guard = (guard or _Guard()).restart(settings.timeout_s)
    max_chars = limits.chars if limits else 1 << 62
    kwargs = dict(model=settings.model, messages=messages, format=format_, options=options,
                  keep_alive=_keep_alive(settings.keep_alive))

    def call():
        if stream:
            parts, size, reason, done = [], 0, None, False
            for chunk in client.chat(stream=True, **kwargs):
                piece = chunk.message.content or ""
                parts.append(piece)
                size += len(piece)
                if size > max_chars:
                    raise _TooLong(f"the answer is over {max_chars:,} characters")
                if chunk.done:
                    done, reason = True, chunk.done_reason
            if not done:
                raise _Invalid("the answer stream ended before the model finished (cut mid-answer)")
            return "".join(parts), reason
        response = client.chat(stream=False, **kwargs)
        return response.message.content or "", response.done_reason

    try:
        content, reason = _within(guard.deadline, call)
    except TimeoutError:
        raise _too_slow(settings) from None
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
    except json.JSONDecodeError as err:
        if not err.doc.lstrip().startswith("{"):  # every line Ollama sends is a JSON object
            raise _not_ollama(settings) from None
        raise _Invalid("the answer stream was cut mid-line") from None
    except httpx.HTTPError as err:
        raise _unreachable(settings, type(err).__name__) from None
    except ValueError:  # pydantic's ValidationError: a chunk that is not Ollama's shape
        raise _not_ollama(settings) from None
    if reason == "length":
        raise _Invalid("the answer was cut at the model's length limit (done_reason 'length'; "
                       "a larger num_ctx helps)")
    if len(content) > max_chars:
        raise _TooLong(f"the answer is over {max_chars:,} characters")
    return content


def _ask(client, settings, messages, speakers, attempts: int, stream: bool,
         guard: Optional[_Guard] = None, limits: Optional[Limits] = None) -> tuple[str, dict]:
    """Ask until the answer is a valid script, at most `attempts` times."""
    format_ = script_schema(speakers)
    problem, too_long = "", False
    for attempt in range(attempts):
        options = dict(settings.options or {})
        if attempt and isinstance(options.get("seed"), int) and options["seed"] >= 0:
            options["seed"] += attempt  # a fixed seed would give the same bad answer again
        try:
            content = _chat_once(client, settings, messages, format_, options, stream, guard, limits)
            return content, parse_answer(content, speakers, limits)
        except _Invalid as err:
            problem, too_long = str(err), isinstance(err, _TooLong)
            log.info("answer %d of %d is not a valid script: %s", attempt + 1, attempts, problem)
    advice = ("it ran far past the length asked for: try another model" if too_long
              else "try a larger model or a shorter duration")
    raise PodiumError(f"the model's answer was not a valid script after {attempts} attempt"
                      f"{'s' if attempts != 1 else ''}: {problem}; {advice}")


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
    if not (math.isfinite(duration_s) and duration_s > 0):  # nan, inf: a traceback before
        raise PodiumError(f"the duration must be a positive number of seconds, not {duration_s:g}")
    if words_per_minute <= 0:
        raise PodiumError(f"words_per_minute must be positive, not {words_per_minute:g}")
    if max_attempts < 1:
        raise PodiumError("max_attempts must be at least 1")
    settings = settings or OllamaSettings()
    timeout = settings.timeout_s
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise PodiumError(f"the Ollama timeout must be a positive number of seconds, not "
                          f"{timeout!r} ({_names(settings)['timeout']})")
    if not (settings.model or "").strip():
        raise PodiumError("no Ollama model given: name one (--llm-model, e.g. llama3.2)")
    names = parse_speakers(speakers)
    try:
        import ollama
    except ImportError:
        raise PodiumError("guided mode needs the ollama client: pip install ollama") from None

    settings = replace(settings, host=check_host(settings.host))
    limits = Limits.for_duration(duration_s, words_per_minute, stream)
    guard = _Guard(limits.wire_bytes)
    # The URL as the client uses it (so messages show it); Ollama does not redirect its API.
    client = ollama.Client(host=settings.host, timeout=settings.timeout_s, follow_redirects=False,
                           transport=_guarded_transport(guard))
    try:
        messages = build_messages(topic, duration_s, language, audience, tone, names, words_per_minute)
        content, data = _ask(client, settings, messages, names, max_attempts, stream, guard, limits)
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
                content, data = _ask(client, settings, messages, names, 1, stream, guard, limits)
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
    if script.music:
        lines += [f"[music: {_one_line(script.music)}]", ""]
    for segment in script.segments:
        lines += [f"## {_one_line(segment.title or script.title).lstrip('#').strip()}", ""]
        if segment.music:
            lines += [f"[music: {_one_line(segment.music)}]"]
        lines += [_one_line(segment.marked_text, 1_000_000).lstrip("#").strip(), ""]
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
