"""The `podium` command line: make a presenter video from a script, or a demo."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from podium.errors import PodiumError, UsageError, one_line

from orchestrator import inputs, lifecycle, options  # light: Ctrl-C while the rest loads is caught in main()
from orchestrator.render import outputs

if TYPE_CHECKING:
    from orchestrator.request import RenderRequest

DEMO_SCRIPT = """# Meet Podium
Podium turns a script into a video of a presenter who speaks it. Everything runs on your own \
machine, so your words and your face never leave it.

## How it works
A local voice reads each sentence. Slides or a portrait follow the narration. Subtitles are \
timed from the real audio, and the result is an ordinary MP4 file.

## Where to go next
Write your own script and run podium generate. Add a portrait with the image option, or open \
the workflows in ComfyUI to change every stage.
"""

EXAMPLES = """examples:
  podium demo
  podium generate --text "Hello there. This is my first video." --out hello.mp4
  podium generate --script talk.md --image me.jpg --subtitles burn --out talk.mp4
  podium generate --script talk.md --music bed.mp3 --sfx applause=clap.wav --out talk.mp4
  podium generate --mode guided --topic "How vaccines work" --duration 90 --out vaccines.mp4
  podium generate --preset cinema --server http://gpu0:8188 --server http://gpu1:8188 \
      --script talk.md --image me.jpg --out talk.mp4

A script file is plain text or Markdown: blank lines start a new segment, '## Heading'
titles the slide for what follows, '# Title' on the first line names the video.
'[sfx: NAME]' marks a sound effect where it stands (never spoken); '[music: TEXT]' says what
the music should be, for the video (before any narration) or for its '## section'.

written beside the video, under its name: NAME.srt, the subtitles, and NAME.ass, the captions as
drawn (--captions, --caption-style) (unless --subtitles none);
guided mode also NAME.json and NAME.md, the script the LLM wrote. None of them may be an input
file or another output, and none replaces an existing file without --force.

exit codes: 0 done (also when stdout cannot take the closing summary: the video is whole); 1 failed (the job stopped on an error); 2 usage (fix the command, a file
it names, or install what the message names); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""


def _seconds(what: str, low: float, high: float):
    """An argparse type: more than `low` and at most `high` seconds."""
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} takes seconds, got {value!r}") from None
        if not low < seconds <= high:
            raise argparse.ArgumentTypeError(f"{what} must be more than {low:g} and at most {high:g} "
                                             f"seconds, got {value}")
        return seconds
    return parse


def _add_run_options(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    """How this process renders: flags of the command line, not fields of a request."""
    from orchestrator.request import LONG_MINUTES, LONG_SEGMENTS
    if not demo:
        parser.add_argument("--request", metavar="FILE.json", default=None,
                            help="render this request (JSON, the fields of orchestrator/request.py, "
                                 "as `podium serve` hands its jobs over); options given beside it win")
        parser.add_argument("--server", action="append", metavar="URL",
                            help="a ComfyUI server to render on (repeat for several; segments go "
                                 "to whichever is free); none: render in this process")
        parser.add_argument("--config", metavar="FILE", help="YAML with `servers: [URL, ...]`")
        parser.add_argument("--segment-timeout", type=_seconds("--segment-timeout", 0, 7 * 86400),
                            default=None, metavar="SECONDS",
                            help="give a segment up on a server (and run it on another) when it "
                                 "has not finished after this long (default: generous, from the "
                                 "graph's size: 10 min + 1 min per node + 10 s per character)")
        parser.add_argument("--plan", action="store_true",
                            help="print the plan as JSON (segments, per server the graph and the "
                                 "chunks each generation makes, estimated GPU time) and render nothing")
        parser.add_argument("--progress-json", action="store_true",
                            help="print progress as JSON lines on stdout, the result last "
                                 "(for programs that run podium; see orchestrator/render/progress_json.py)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--yes", action="store_true", help="render a very long script without "
                        f"asking (over {LONG_MINUTES} min of narration or {LONG_SEGMENTS} segments)")
    parser.add_argument("--report", action="store_true",
                        help="print each stage's time and peak memory at the end")


def _add_render_options(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    """The request's fields as options (orchestrator/request.py), then this process's own flags."""
    from orchestrator.request import RenderRequest
    groups = {}
    if not demo:
        groups["source"] = parser.add_mutually_exclusive_group()
        groups["guided"] = parser.add_argument_group(
            "guided mode (the script is written next to the video as .json and .md: edit it, then "
            "rerun with --script)")
    groups["layout"] = parser.add_argument_group(
        "decks and layout (--deck talk.pptx: its slides, its speaker notes as the narration; "
        "--layout pip puts the presenter in a corner box over the slides)")
    groups["soundtrack"] = parser.add_argument_group(
        "soundtrack (mixed in the one AAC encode of the stitched video)")
    options.add_model_options(parser, RenderRequest, groups, demo=demo)
    _add_run_options(parser, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podium", description="Local videos of a presenter speaking your script.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="make a video from your text or script file",
        description="Make a video of a presenter speaking your text.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_render_options(generate)

    demo = commands.add_parser("demo", help="make a short sample video (no downloads needed)")
    _add_render_options(demo, demo=True)
    demo.set_defaults(preset="draft", out="demo.mp4", text=DEMO_SCRIPT, request=None, server=None,
                      config=None, segment_timeout=None, progress_json=False)

    comfy = commands.add_parser("comfy", help="start or stop one ComfyUI per GPU")
    comfy_commands = comfy.add_subparsers(dest="comfy_command", required=True, metavar="ACTION")
    up = comfy_commands.add_parser(
        "up", help="start one ComfyUI per GPU (CPU only: one with --cpu), wait until they answer",
        description="Start ComfyUI from COMFYUI_DIR, one instance per GPU, each on its own port "
                    "and temp folder, with this repository as its base directory.")
    up.add_argument("--gpus", default="all", help="'all' (default) or indices like 0,1")
    up.add_argument("--base-port", type=int, default=8188, help="first port (default 8188)")
    up.add_argument("--comfyui-dir", type=Path, default=None,
                    help="ComfyUI source tree (default $COMFYUI_DIR)")
    comfy_commands.add_parser("down", help="stop the instances `comfy up` started")

    from orchestrator.cli import models as models_cli

    models_cli.add_parser(commands)
    from orchestrator.cli import profile as profile_cli

    profile_cli.add_parser(commands)

    servers = commands.add_parser("servers", help="health, queue and memory of ComfyUI servers")
    servers.add_argument("--server", action="append", metavar="URL",
                         help="a server to ask (default: those `podium comfy up` started)")

    from orchestrator.service import cli as service_cli

    service_cli.add_parsers(commands)  # serve (and worker): each sets `service_command`
    return parser


def _narration(request: RenderRequest, how, target: Path) -> str:
    """The narration text (or Podium script JSON) to render, from wherever the user gave it."""
    if request.mode == "guided" and request.deck:
        return ""  # the deck's notes are written by the LLM when the deck is read (lecture.py)
    if request.mode == "guided":
        return _guided_script(request, how, target)
    if request.deck:
        return ""  # the deck brings its narration
    if request.topic:
        raise outputs.OutputError("--topic goes with --mode guided; in direct mode give --text or --script")
    if request.text is None and request.script is None:
        raise outputs.OutputError("give the narration: --text \"...\" or --script FILE "
                                  "(or --mode guided --topic \"...\" to have it written)")
    text = request.text if request.script is None else inputs.read_script(request.script)  # bounded, a file only
    if not text.strip():
        raise outputs.OutputError(
            "the script is empty: give the narration with --text \"...\" or --script FILE")
    return text


def _guided_script(request: RenderRequest, how, target: Path) -> str:
    """Have the LLM write the script, save it beside the video (.json, .md), return its JSON."""
    import json

    from podium.engines.guided import write_script
    from podium.engines.ollama_chat import OllamaSettings
    from podium.engines.script_files import save_script_files

    if not request.topic or not request.topic.strip():
        raise outputs.OutputError("guided mode needs a topic: --topic \"what the video is about\"")
    for suffix in (".json", ".md"):
        outputs.check_target(target.with_suffix(suffix), how.force)
    settings = OllamaSettings(host=request.ollama_host, model=request.llm_model,
                              timeout_s=request.llm_timeout, cli=True)  # messages name --llm-timeout, --ollama-host
    print(f"writing a {request.duration:.0f} s script with {request.llm_model} ...", file=sys.stderr)
    script = write_script(request.topic, settings, duration_s=request.duration, language=request.language,
                          audience=request.audience, tone=request.tone, speakers=request.speakers or None)
    try:
        json_path, md_path = save_script_files(script, target.with_suffix(""), replace=how.force)
    except FileExistsError as err:
        raise outputs.OutputError(f"{err.filename} appeared while the script was being written and "
                                  "was left as it is: pass --force to replace it") from None
    print(f"script: {json_path} (and {md_path.name})", file=sys.stderr)
    return json.dumps(script.to_dict(), ensure_ascii=False)


def render_request(args) -> RenderRequest:
    """The request the command line gives: --request FILE's fields, then the options given
    beside it; a value the model refuses is one line naming the option."""
    from pydantic import ValidationError

    from podium.jsonio import JsonInputError, read_json

    from orchestrator.request import RenderRequest

    data = {}
    if getattr(args, "request", None):
        try:
            data = read_json(Path(args.request).expanduser())  # bounded: size, depth, a file only
        except (JsonInputError, OSError, UnicodeDecodeError, ValueError) as err:
            raise UsageError(f"cannot read the request file {args.request}: {one_line(err)}") from None
        if not isinstance(data, dict):
            raise UsageError(f"the request file {args.request} must hold a JSON object")
    data.update(options.given(args, RenderRequest))
    try:
        request = RenderRequest.model_validate(data)
    except ValidationError as err:
        where = f" (in {args.request})" if getattr(args, "request", None) else ""
        raise UsageError(options.problem(err.errors()[0], RenderRequest) + where) from None
    if request.out is None:
        raise UsageError("--out FILE.mp4 is required: where to write the video")
    return request


def generate(args) -> int:
    from orchestrator.render import generate as job
    from orchestrator.servers.dispatch import InProcessInstance
    from orchestrator.lifecycle import remove_stale

    request = render_request(args)
    how = job.Run(force=args.force, yes=args.yes, quiet=args.quiet, config=args.config,
                  plan=getattr(args, "plan", False))
    # what runs killed outright left (their PID is dead): temp folders, hidden .part files
    remove_stale(out_folder=Path(request.out).expanduser().absolute().parent)

    instances = _instances(args) or [InProcessInstance()]
    if args.report:
        from orchestrator.render.embedded import reset_stage_reports
        reset_stage_reports()
    if args.progress_json:
        from orchestrator.render.progress_json import JsonEvents
        how.sink = JsonEvents()
    from orchestrator.graphs.ui_format import load_any_workflow

    load_graph = lambda name: load_any_workflow(name, _object_info_source(instances))  # noqa: E731
    result = job.run(request, how, lambda target: _narration(request, how, target), instances, load_graph)
    if how.sink is not None:
        how.sink.write("result", video=str(result.target), duration=result.duration,
                       segments=result.segments, reused=result.reused,
                       preset=result.preset, wall=result.wall)
    extra = f", subtitles {result.target.with_suffix('.srt')}" if request.subtitles != "none" else ""
    extra += " and .ass" if extra and result.target.with_suffix(".ass").exists() else ""
    summary = [f"wrote {result.target}: {result.duration:.1f} s of video ({result.segments} segments, "
          f"{result.reused} from cache) at {request.fps} fps, {request.size[0]}x{request.size[1]}, "
          f"{result.preset} preset, in {result.wall:.1f} s "
          f"({result.wall / max(result.duration, 1e-9):.2f}x real time){extra}"]
    if args.report:
        from orchestrator.render.embedded import stage_table
        summary.append(stage_table())
    outputs.print_summary(summary, result.target)
    return 0


def comfy(args) -> int:
    from orchestrator.servers import comfy_up

    if args.comfy_command == "down":
        stopped, left = comfy_up.down()
        for line in left:
            print(f"warning: {line}", file=sys.stderr)
        print(f"stopped {stopped} ComfyUI instance(s)")
        return 0
    comfyui_dir = args.comfyui_dir or (Path(os.environ["COMFYUI_DIR"]) if os.environ.get("COMFYUI_DIR") else None)
    if comfyui_dir is None:
        raise outputs.OutputError("where is ComfyUI? set COMFYUI_DIR or pass --comfyui-dir")
    gpus = comfy_up.parse_gpus(args.gpus)
    print(f"starting {max(len(gpus), 1)} ComfyUI instance(s) from {comfyui_dir} ...", file=sys.stderr)
    try:
        started = comfy_up.up(comfyui_dir, gpus, args.base_port)
    except FileNotFoundError as err:
        raise outputs.OutputError(str(err)) from None
    except comfy_up.StartFailed as err:  # it failed to run, not a usage mistake: 1
        print(f"error: {err}", file=sys.stderr)
        return 1
    for server in started:
        print(f"{server['url']}  {server['device']}  log: {server['log']}")
    print(f"use them: podium generate --config {comfy_up.STATE} ...")
    return 0


def show_servers(args) -> int:
    from orchestrator.servers import comfy_up

    urls = args.server or [s["url"] for s in comfy_up.known_servers()]
    if not urls:
        raise outputs.OutputError("no servers: pass --server URL or start some with `podium comfy up`")
    print("\n".join(comfy_up.status_lines(urls)))
    return 0


def _object_info_source(instances):
    """Where to learn node inputs for converting a UI-format workflow: the first server, or
    the pack itself when rendering in-process."""
    if getattr(instances[0], "in_process", False):
        from orchestrator.render.embedded import object_info
        return object_info
    return instances[0].client.object_info


def _instances(args) -> list:
    """A ComfyInstance per healthy server; none given: [] (the in-process runner is used)."""
    urls = options.servers(args.server, args.config)
    if not urls:
        return []
    from orchestrator.servers.remote import ComfyInstance

    instances = []
    for url in urls:
        instance = ComfyInstance(url, segment_timeout=args.segment_timeout)
        problem = instance.problem()
        if problem is None:
            instances.append(instance)
        else:
            print(f"warning: {instance.name} {problem}; its share goes to the others", file=sys.stderr)
    if not instances:
        raise outputs.OutputError("no ComfyUI server answers: start them with `podium comfy up` "
                                  "or check the --server URLs")
    return instances


def main(argv: list[str] | None = None) -> int:
    lifecycle.handle_termination()  # SIGTERM / SIGHUP: as Ctrl-C, with their own exit codes
    try:
        args = build_parser().parse_args(argv)  # (it imports most of podium: Ctrl-C lands here too)
        if args.command == "comfy":
            return comfy(args)
        if args.command == "servers":
            return show_servers(args)
        if getattr(args, "service_command", None) is not None:
            return args.service_command(args)
        if args.command == "models":
            from orchestrator.cli import models as models_cli
            return models_cli.run(args)
        if args.command == "profile":
            from orchestrator.cli import profile as profile_cli
            return profile_cli.run(args)
        return generate(args)
    except KeyboardInterrupt as err:
        what = f"stopped by {err}" if isinstance(err, lifecycle.Terminated) else "interrupted"
        try:
            print(f"\n{what}: nothing was written", file=sys.stderr)
        except OSError:  # SIGHUP: the terminal may be gone
            pass
        return lifecycle.exit_code(err)
    except PodiumError as err:  # every error meant for the user, from the pack or from here
        from orchestrator.render import local

        message = err.user_message() if isinstance(err, local.ExecutionError) else str(err)
        print(f"error: {one_line(message, 1000)}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # the disk or the system said no (full, read-only, gone)
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
