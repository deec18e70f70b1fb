"""The `podium` command line: make a presenter video from a script, or a demo."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from podium.errors import PodiumError, one_line

from . import outputs
from .generate import LONG_MINUTES, LONG_SEGMENTS
from .ui_format import load_any_workflow

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

written beside the video, under its name: NAME.srt, the subtitles (unless --subtitles none);
guided mode also NAME.json and NAME.md, the script the LLM wrote. None of them may be an input
file or another output, and none replaces an existing file without --force.

exit codes: 0 done; 1 failed (the job stopped on an error); 2 usage (fix the command, a file
it names, or install what the message names); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

MAX_SIDE = 4096  # the Presenter node's limit


def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got {value!r}") from None
    if not (64 <= width <= MAX_SIDE and 64 <= height <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"size {value}: each side must be from 64 to {MAX_SIDE} pixels")
    if width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"size {value}: both sides must be even (H.264 needs it)")
    return width, height


def _fps(value: str) -> int:
    try:
        fps = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fps must be a whole number from 1 to 120, got {value!r} "
                                         "(fractional rates such as 29.97 are not supported)") from None
    if not 1 <= fps <= 120:
        raise argparse.ArgumentTypeError(f"fps must be from 1 to 120, got {fps}")
    return fps


def _seconds(what: str, low: float, high: float, zero_ok: bool):
    """An argparse type: a number of seconds in [low, high] (low itself only if `zero_ok`)."""
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} takes seconds, got {value!r}") from None
        if not (low <= seconds <= high) or (seconds == low and not zero_ok):
            bound = f"from {low:g} to" if zero_ok else f"more than {low:g} and at most"
            raise argparse.ArgumentTypeError(f"{what} must be {bound} {high:g} seconds, got {value}")
        return seconds
    return parse


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", metavar="FILE", help="portrait to animate (PNG/JPEG/WebP); "
                        "without it the video shows slides made from the script")
    parser.add_argument("--preset", choices=["auto", "draft", "fast", "balanced", "quality", "cinema"],
                        default="auto", help="auto (default): the best preset whose models are "
                        "installed and that fits the free GPU memory; draft: CPU only, nothing to "
                        "download; fast: + Wav2Lip; balanced/quality: + cloned voice, drawn "
                        "presenter, upscaling; cinema: ComfyUI servers only, an audio-driven "
                        "video model (workflows/presets.yaml)")
    parser.add_argument("--voice-ref", metavar="FILE", help="balanced/quality: 5-12 s of the voice "
                        "to clone (WAV, or anything ffmpeg reads)")
    parser.add_argument("--voice-ref-text", default="", metavar="TEXT",
                        help="exactly what --voice-ref says")
    parser.add_argument("--presenter-prompt", default="", metavar="TEXT",
                        help="what the drawn presenter looks like (when no --image)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the drawn presenter and "
                        "the cloned voice: the same seed gives the same result (default 0)")
    parser.add_argument("--subtitles", choices=["none", "srt", "burn"], default="srt",
                        help="srt: a .srt file beside the video (default); burn: drawn into the "
                             "picture and the .srt too; none")
    parser.add_argument("--fps", type=_fps, default=25, help="frames per second (default 25)")
    parser.add_argument("--size", type=_size, default=(1280, 720), metavar="WxH",
                        help="video size (default 1280x720)")
    parser.add_argument("--voice", metavar="ID|FILE.onnx", default="piper-en_US-joe-medium",
                        help="a Piper voice id from models.yaml, or the path of a .onnx voice")
    parser.add_argument("--speaker-voice", action="append", default=[], metavar="NAME=VOICE",
                        help="dialogue: the voice (id or .onnx) for a speaker; repeat per speaker")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--crossfade", type=_seconds("--crossfade", 0, 5, zero_ok=True), default=0.0,
                        metavar="SECONDS", help="cross-fade between segments, 0 to 5 (re-encodes "
                        "the video); default 0")
    parser.add_argument("--yes", action="store_true", help="render a very long script without "
                        f"asking (over {LONG_MINUTES} min of narration or {LONG_SEGMENTS} segments)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="where finished segments are kept so a rerun resumes "
                             "(default $PODIUM_CACHE_DIR or the user cache folder, ~/.cache/podium/segments on Linux)")
    parser.add_argument("--report", action="store_true",
                        help="print each stage's time and peak memory at the end")
    sound = parser.add_argument_group(
        "soundtrack (mixed in the one AAC encode of the stitched video)")
    sound.add_argument("--music", metavar="FILE|auto", default=None,
                       help="music under the narration: an audio file (WAV, FLAC, MP3, OGG, M4A, "
                            "...), looped or trimmed to the video; auto: generated for it from the "
                            "script's music prompt (workflows/music.json, needs the music model)")
    sound.add_argument("--music-prompt", default="", metavar="TEXT",
                       help="with --music auto: what the music should be (default: the script's "
                            "[music: ...] / \"music\", else calm background music)")
    sound.add_argument("--music-volume", type=float, default=-8.0, metavar="DB",
                       help="the music's level in the pauses, in dB relative to the voice "
                            "(default -8)")
    sound.add_argument("--duck", type=float, default=12.0, metavar="DB",
                       help="how far the music drops while someone speaks (default 12 dB)")
    sound.add_argument("--loudness", type=float, default=-16.0, metavar="LUFS",
                       help="integrated loudness of the finished audio, true peak at most -1 dBTP "
                            "(default -16, for online video; -23 for broadcast)")
    sound.add_argument("--sfx", action="append", default=[], metavar="NAME=FILE|auto",
                       help="the sound for the script's [sfx: NAME] cues (repeat per sound); "
                            "auto: generate those without a file (workflows/sfx.json)")
    parser.add_argument("--commercial", action="store_true",
                        help="only models whose license allows commercial use (models.yaml "
                             "commercial_use); others are swapped (Wav2Lip -> MuseTalk, F5-TTS -> "
                             "Piper) and each swap is named")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podium", description="Local videos of a presenter speaking your script.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="make a video from your text or script file",
        description="Make a video of a presenter speaking your text.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    generate.add_argument("--mode", choices=["direct", "guided"], default="direct",
                          help="direct: you give the narration (default); guided: a local LLM "
                               "(Ollama) writes it from --topic")
    source = generate.add_mutually_exclusive_group()
    source.add_argument("--text", help="direct: the narration itself")
    source.add_argument("--script", metavar="FILE", help="direct: a .txt/.md script or a Podium script .json")
    source.add_argument("--topic", help="guided: what the video is about")
    guided = generate.add_argument_group("guided mode (the script is written next to the video "
                                         "as .json and .md: edit it, then rerun with --script)")
    guided.add_argument("--duration", type=float, default=60, metavar="SECONDS",
                        help="target length of the narration (default 60)")
    guided.add_argument("--language", default="en", help="language of the narration (default en)")
    guided.add_argument("--audience", default="", help="who it is for, e.g. 'first-year students'")
    guided.add_argument("--tone", default="", help="e.g. 'friendly', 'formal'")
    guided.add_argument("--speakers", default="", metavar="A,B",
                        help="names for a dialogue; give each a voice with --speaker-voice")
    guided.add_argument("--llm-model", default="llama3.2", metavar="NAME", help="Ollama model (default llama3.2)")
    guided.add_argument("--ollama-host", default=os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434"),
                        metavar="URL", help="Ollama server (default $OLLAMA_HOST or http://127.0.0.1:11434)")
    guided.add_argument("--llm-timeout", type=_seconds("--llm-timeout", 0, 86400, zero_ok=False),
                        default=300, metavar="SECONDS",
                        help="how long to wait for the model (default 300)")
    generate.add_argument("--out", required=True, metavar="FILE.mp4", help="where to write the video")
    generate.add_argument("--server", action="append", metavar="URL",
                          help="a ComfyUI server to render on (repeat for several; segments go "
                               "to whichever is free); none: render in this process")
    generate.add_argument("--config", metavar="FILE", help="YAML with `servers: [URL, ...]`")
    generate.add_argument("--segment-timeout", type=_seconds("--segment-timeout", 0, 7 * 86400, zero_ok=False), default=None, metavar="SECONDS",
                          help="give a segment up on a server (and run it on another) when it "
                               "has not finished after this long (default: generous, from the "
                               "graph's size: 10 min + 1 min per node + 10 s per character)")
    generate.add_argument("--workflow", default=None, metavar="NAME|FILE",
                          help="run this graph (API or UI format) instead of the preset's")
    generate.add_argument("--plan", action="store_true",
                          help="print the plan as JSON (segments, per server the graph and the "
                               "chunks each generation makes, estimated GPU time) and render nothing")
    generate.add_argument("--progress-json", action="store_true",
                          help="print progress as JSON lines on stdout, the result last "
                               "(for programs that run podium; see orchestrator/progress_json.py)")
    _add_render_options(generate)

    demo = commands.add_parser("demo", help="make a short sample video (no downloads needed)")
    demo.add_argument("--out", default="demo.mp4", metavar="FILE.mp4", help="default demo.mp4")
    demo.set_defaults(preset="draft", workflow=None, text=DEMO_SCRIPT, script=None, topic=None, mode="direct",
                      server=None, config=None)
    _add_render_options(demo)

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

    from . import models_cli

    models_cli.add_parser(commands)

    servers = commands.add_parser("servers", help="health, queue and memory of ComfyUI servers")
    servers.add_argument("--server", action="append", metavar="URL",
                         help="a server to ask (default: those `podium comfy up` started)")

    from .service import cli as service_cli

    service_cli.add_parsers(commands)  # serve (and worker): each sets `service_command`
    return parser


def _narration(args, target: Path) -> str:
    """The narration text (or Podium script JSON) to render, from wherever the user gave it."""
    if args.mode == "guided":
        return _guided_script(args, target)
    if args.topic:
        raise outputs.OutputError("--topic goes with --mode guided; in direct mode give --text or --script")
    if args.text is None and args.script is None:
        raise outputs.OutputError("give the narration: --text \"...\" or --script FILE "
                                  "(or --mode guided --topic \"...\" to have it written)")
    if args.script is None:
        text = args.text
    else:
        try:
            text = Path(args.script).expanduser().read_text(encoding="utf-8-sig")  # BOM: not spoken
        except (OSError, UnicodeDecodeError) as err:
            raise outputs.OutputError(f"cannot read the script file {args.script}: {err}") from None
    if not text.strip():
        raise outputs.OutputError(
            "the script is empty: give the narration with --text \"...\" or --script FILE")
    return text


def _guided_script(args, target: Path) -> str:
    """Have the LLM write the script, save it beside the video (.json, .md), return its JSON."""
    import json

    from podium.engines.llm_script import OllamaSettings, save_script_files, write_script

    if not args.topic or not args.topic.strip():
        raise outputs.OutputError("guided mode needs a topic: --topic \"what the video is about\"")
    for suffix in (".json", ".md"):
        outputs.check_target(target.with_suffix(suffix), args.force)
    settings = OllamaSettings(host=args.ollama_host, model=args.llm_model, timeout_s=args.llm_timeout,
                              cli=True)  # messages name --llm-timeout, --ollama-host
    print(f"writing a {args.duration:.0f} s script with {args.llm_model} ...", file=sys.stderr)
    script = write_script(args.topic, settings, duration_s=args.duration, language=args.language,
                          audience=args.audience, tone=args.tone, speakers=args.speakers or None)
    try:
        json_path, md_path = save_script_files(script, target.with_suffix(""), replace=args.force)
    except FileExistsError as err:
        raise outputs.OutputError(f"{err.filename} appeared while the script was being written and "
                                  "was left as it is: pass --force to replace it") from None
    print(f"script: {json_path} (and {md_path.name})", file=sys.stderr)
    return json.dumps(script.to_dict(), ensure_ascii=False)


def generate(args) -> int:
    import tempfile

    from . import generate as job
    from .dispatch import InProcessInstance
    from .lifecycle import remove_stale

    # what runs killed outright left (their PID is dead): temp folders, hidden .part files
    remove_stale(Path(tempfile.gettempdir()), Path(args.out).expanduser().absolute().parent)

    instances = _instances(args) or [InProcessInstance()]
    if args.report:
        from .embedded import reset_stage_reports
        reset_stage_reports()
    if getattr(args, "progress_json", False):
        from .progress_json import JsonEvents
        args.progress_sink = JsonEvents()
    load_graph = lambda name: load_any_workflow(name, _object_info_source(instances))  # noqa: E731
    result = job.run(args, lambda target: _narration(args, target), instances, load_graph)
    if getattr(args, "progress_sink", None) is not None:
        args.progress_sink.write("result", video=str(result.target), duration=result.duration,
                                 segments=result.segments, reused=result.reused,
                                 preset=result.preset, wall=result.wall)
    extra = f", subtitles {result.target.with_suffix('.srt')}" if args.subtitles != "none" else ""
    print(f"wrote {result.target}: {result.duration:.1f} s of video ({result.segments} segments, "
          f"{result.reused} from cache) at {args.fps} fps, {args.size[0]}x{args.size[1]}, "
          f"{result.preset} preset, in {result.wall:.1f} s "
          f"({result.wall / max(result.duration, 1e-9):.2f}x real time){extra}")
    if args.report:
        from .embedded import stage_table
        print(stage_table())
    return 0


def comfy(args) -> int:
    from . import comfy_up

    if args.comfy_command == "down":
        print(f"stopped {comfy_up.down()} ComfyUI instance(s)")
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
    from . import comfy_up

    urls = args.server or [s["url"] for s in comfy_up.known_servers()]
    if not urls:
        raise outputs.OutputError("no servers: pass --server URL or start some with `podium comfy up`")
    print("\n".join(comfy_up.status_lines(urls)))
    return 0


def _object_info_source(instances):
    """Where to learn node inputs for converting a UI-format workflow: the first server, or
    the pack itself when rendering in-process."""
    if getattr(instances[0], "in_process", False):
        from .embedded import object_info
        return object_info
    return instances[0].client.object_info


def _servers(args) -> list[str]:
    """--server URLs, then those of --config (YAML: `servers: [http://host:8188, ...]`)."""
    urls = list(args.server or [])
    if args.config:
        import yaml

        try:
            config = yaml.safe_load(Path(args.config).expanduser().read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise outputs.OutputError(f"cannot read config {args.config}: {one_line(err)}") from None
        servers = config.get("servers", []) if isinstance(config, dict) else None
        if not isinstance(servers, list):
            raise outputs.OutputError(f"config {args.config}: expected `servers: [http://host:8188, ...]`, "
                                      f"got {one_line(repr(servers if isinstance(config, dict) else config), 80)}")
        for server in servers:
            url = server.get("url") if isinstance(server, dict) else server
            if not isinstance(url, str) or not url.strip():
                raise outputs.OutputError(f"config {args.config}: each server is a URL (or `url: URL`), "
                                          f"got {one_line(repr(server), 80)}")
            urls.append(url.strip())
    return urls


def _instances(args) -> list:
    """A ComfyInstance per healthy server; none given: [] (the in-process runner is used)."""
    urls = _servers(args)
    if not urls:
        return []
    from .remote import ComfyInstance

    instances = []
    for url in urls:
        instance = ComfyInstance(url, segment_timeout=getattr(args, "segment_timeout", None))
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
    args = build_parser().parse_args(argv)
    from . import lifecycle, local

    lifecycle.handle_termination()  # SIGTERM / SIGHUP: as Ctrl-C, with their own exit codes
    try:
        if args.command == "comfy":
            return comfy(args)
        if args.command == "servers":
            return show_servers(args)
        if getattr(args, "service_command", None) is not None:
            return args.service_command(args)
        if args.command == "models":
            from . import models_cli
            return models_cli.run(args)
        return generate(args)
    except KeyboardInterrupt as err:
        what = f"stopped by {err}" if isinstance(err, lifecycle.Terminated) else "interrupted"
        try:
            print(f"\n{what}: nothing was written", file=sys.stderr)
        except OSError:  # SIGHUP: the terminal may be gone
            pass
        return lifecycle.exit_code(err)
    except PodiumError as err:  # every error meant for the user, from the pack or from here
        message = err.user_message() if isinstance(err, local.ExecutionError) else str(err)
        print(f"error: {one_line(message, 1000)}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # the disk or the system said no (full, read-only, gone)
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
