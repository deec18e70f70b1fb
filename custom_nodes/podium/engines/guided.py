"""Guided mode: a local LLM served by Ollama writes the script from a topic.

The answer is asked for as structured output (Ollama's `format` = a JSON schema): a title, a
stage description for the image stage, and segments of narration with a slide title, bullets
and, for a dialogue, a speaker. Its length follows the requested duration at the voice's words
per minute. Invalid or truncated answers are retried a bounded number of times; Ollama not
running, a model not pulled or a slow server end in one line that says what to do.

No ComfyUI here; the `ollama` client is imported when a script is written.
"""
from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Iterable, Optional, Union

from ..errors import PodiumError
from .guided_answer import Limits, _Invalid, _TooLong, count_words, parse_answer, to_script
from .guided_prompt import (DEFAULT_WORDS_PER_MINUTE, LENGTH_TOLERANCE, _resize_message, build_messages,
                            parse_speakers, script_schema, target_words)
from .ollama_chat import OllamaSettings, _chat_once, _Guard, _guarded_transport, _names
from .ollama_hosts import check_host
from .script import Script

log = logging.getLogger("podium.guided")


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


def _check_request(topic: str, settings: OllamaSettings, duration_s: float, words_per_minute: float,
                   max_attempts: int) -> None:
    """One line for a request that cannot be asked, before anything is sent."""
    if not topic:
        raise PodiumError("guided mode needs a topic: say what the video is about (--topic \"...\")")
    if not (math.isfinite(duration_s) and duration_s > 0):  # nan, inf: a traceback before
        raise PodiumError(f"the duration must be a positive number of seconds, not {duration_s:g}")
    if words_per_minute <= 0:
        raise PodiumError(f"words_per_minute must be positive, not {words_per_minute:g}")
    if max_attempts < 1:
        raise PodiumError("max_attempts must be at least 1")
    timeout = settings.timeout_s
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise PodiumError(f"the Ollama timeout must be a positive number of seconds, not "
                          f"{timeout!r} ({_names(settings)['timeout']})")
    if not (settings.model or "").strip():
        raise PodiumError("no Ollama model given: name one (--llm-model, e.g. llama3.2)")


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
    settings = settings or OllamaSettings()
    _check_request(topic, settings, duration_s, words_per_minute, max_attempts)
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
