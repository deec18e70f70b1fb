"""Deep or endless JSON from a user (issue 18.8): every reader refuses it with one line, never a
RecursionError traceback, a 500, or a read that never ends."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from starlette.requests import Request

from podium import jsonio
from podium.engines import guided_answer
from podium.engines.script import parse_script
from podium.errors import ScriptFormatError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import run_cli  # noqa: E402

DEEP = "[" * 100_000  # a RecursionError in json.loads
NESTED = "[" * 200 + "]" * 200  # valid JSON, within the interpreter's limit, past ours


@pytest.mark.parametrize("text", [DEEP, NESTED, '{"a":' * 100 + "1" + "}" * 100])
def test_deep_json_is_refused_in_one_line(text):
    with pytest.raises(jsonio.JsonTooLarge, match="more than 64 deep"):
        jsonio.loads(text)


def test_json_within_the_limits_reads_as_json():
    assert jsonio.loads("[" * 64 + "]" * 64) is not None
    assert jsonio.loads('{"segments": [{"text": "Hi."}]}') == {"segments": [{"text": "Hi."}]}
    with pytest.raises(jsonio.JsonInputError, match="is not valid JSON"):
        jsonio.loads("{nope")
    with pytest.raises(jsonio.JsonTooLarge, match="more than the 10 bytes"):
        jsonio.loads("[1, 2, 3, 4]", max_bytes=10)


def test_a_fifo_a_device_and_a_folder_are_not_read(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    for path, said in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                       (tmp_path, "a folder"), (tmp_path / "gone.json", "no such file")):
        with pytest.raises(jsonio.JsonInputError, match=said):
            jsonio.read_json(path)
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 100 + "0]")
    with pytest.raises(jsonio.JsonTooLarge, match="more than the 50 bytes"):
        jsonio.read_json(big, max_bytes=50)


@pytest.mark.parametrize("text", [DEEP, NESTED, "{" + '"a":{' * 5000])
def test_the_script_readers_refuse_deep_json(text):
    with pytest.raises(ScriptFormatError, match="deep"):
        parse_script(text)  # --text, and the Script node inside ComfyUI
    with pytest.raises(ScriptFormatError, match="deep"):
        parse_script(text, as_json=True)  # --script x.json


def test_the_guided_answer_refuses_deep_json():
    with pytest.raises(guided_answer._Invalid, match="deep"):
        guided_answer.parse_answer(DEEP)
    with pytest.raises(guided_answer._Invalid, match="cut mid-object"):
        guided_answer.parse_answer('{"title": "x", "segments": [')  # as before: a cut answer


def test_workflow_files_refuse_deep_json(tmp_path):
    from orchestrator.graphs.ui_format import load_any_workflow
    from orchestrator.graphs.workflow import WorkflowError, load_workflow

    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    for load in (load_workflow, lambda p: load_any_workflow(p, {})):
        with pytest.raises(WorkflowError, match="deep"):
            load(deep)
    with pytest.raises(WorkflowError, match="not a regular file"):
        load_workflow("/dev/zero")


def test_the_api_body_refuses_deep_json(tmp_path):
    from orchestrator.service import submission
    from orchestrator.service.schemas import RequestError
    from orchestrator.service.state import Settings

    body = DEEP.encode()

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/api/jobs", "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}, receive)
    with pytest.raises(RequestError) as caught:
        asyncio.run(submission.parse_submission(request, Settings(data_dir=tmp_path)))
    assert caught.value.status == 400 and "deep" in caught.value.message  # not a bare 500


@pytest.mark.parametrize("how", ["--script", "--text", "--workflow"])
def test_the_cli_says_one_line_for_deep_json(tmp_path, how):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    given = {"--script": ["--script", deep], "--text": ["--text", DEEP[:20_000]],
             "--workflow": ["--text", "Hi.", "--workflow", deep]}[how]
    rc, out, err = run_cli("generate", *given, "--out", tmp_path / "v.mp4", cwd=tmp_path)
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and "deep" in err, err
    assert not (tmp_path / "v.mp4").exists()
