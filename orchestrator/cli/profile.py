"""`podium profile create | list | show | set-text | delete | export | import`: a reusable
"me" (portraits, voice sample and transcript, consent) for `podium generate --profile NAME`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """A profile keeps your portrait(s), a voice sample with its transcript and your consent, so
`podium generate --profile NAME` needs neither --image nor --voice-ref again.

Profiles live in the user data folder (~/.local/share/podium/profiles on Linux; $PODIUM_DATA_DIR
moves it), one folder each, with a manifest of each file's sha256. Each image must show exactly
one face (pictures over 2048 px are downscaled). The voice sample must last 5-30 s, one person
speaking without music; its best 10-15 s are kept. Without --voice-text the transcript is
written by speech recognition (podium models pull whisper-tiny): check it with `profile show`
and correct it with `podium profile set-text NAME "exactly what it says"`.
"""
EXAMPLES = """examples:
  podium profile create me --image me.jpg --voice me.wav --consent "I, Ana Lima, agree that Podium may make videos with my face and voice"
  podium profile show me
  podium profile set-text me "Hello, I am Ana and this is my voice."
  podium generate --profile me --text "Hello there." --out hello.mp4
  podium profile export me me.podium-profile.zip && podium profile import me.podium-profile.zip
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("profile", help="a reusable you: portrait, voice, consent",
                                   description=DESCRIPTION, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a profile from portraits, a voice sample and consent")
    create.add_argument("name", metavar="NAME", help="1-64 letters, digits, '-' or '_'")
    create.add_argument("--image", action="append", required=True, metavar="FILE",
                        help="a portrait showing one face (repeat for more; the first is the one videos use)")
    create.add_argument("--voice", metavar="FILE", help="5-30 s of you speaking (WAV, or anything ffmpeg reads)")
    create.add_argument("--voice-text", metavar="TEXT",
                        help="exactly what the sample says (default: written by speech recognition)")
    create.add_argument("--consent", required=True, metavar="TEXT",
                        help='your consent, e.g. "I, NAME, agree that Podium may make videos with my face and voice"')
    create.add_argument("--force", action="store_true", help="replace a profile of that name")
    actions.add_parser("list", help="the profiles there are")
    show = actions.add_parser("show", help="a profile's files, transcript and consent")
    show.add_argument("name", metavar="NAME")
    set_text = actions.add_parser("set-text", help="correct the voice sample's transcript")
    set_text.add_argument("name", metavar="NAME")
    set_text.add_argument("text", metavar="TEXT", help="exactly what the sample says")
    delete = actions.add_parser("delete", help="remove a profile (not while a render uses it)")
    delete.add_argument("name", metavar="NAME")
    export = actions.add_parser("export", help="write a profile to one archive (.zip)")
    export.add_argument("name", metavar="NAME")
    export.add_argument("file", metavar="FILE", type=Path)
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    imported = actions.add_parser("import", help="add a profile from an archive `profile export` wrote")
    imported.add_argument("file", metavar="FILE", type=Path)
    imported.add_argument("--force", action="store_true", help="replace a profile of that name")
    from orchestrator.profiles.train import add_parser as add_train

    add_train(actions)
    return parser


def run(args) -> int:
    from orchestrator.profiles import profile as profiles

    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    action = args.profile_command
    if action == "create":
        from orchestrator.profiles.make import create

        made = create(args.name, args.image, args.consent, args.voice, args.voice_text, args.force, say)
        print(profiles.describe(made))
    elif action == "list":
        for name in profiles.names():
            print(name)
        if not profiles.names():
            say(f"no profiles in {profiles.store()}: `podium profile create NAME ...` makes one")
    elif action == "show":
        print(profiles.describe(profiles.load(args.name)))
    elif action == "set-text":
        print(profiles.describe(profiles.set_text(args.name, args.text)))
    elif action == "train":
        from orchestrator.profiles.train import train

        print(profiles.describe(train(args.name, args.base, args.steps, args.rank, args.token, args.size)))
    elif action == "delete":
        profiles.delete(args.name)
        print(f"deleted profile {args.name}")
    elif action == "export":
        print(f"wrote {profiles.export(args.name, args.file, args.force)}")
    elif action == "import":
        made = profiles.import_archive(args.file, args.force)
        print(f"imported profile {made.name} into {made.folder}")
    return 0
