"""Lecture speed (issue 22): a PPTX deck made here, rendered in draft with the portrait in the
corner, end to end through the command line; prints one table.

    .venv/bin/python scripts/bench/lecture.py [--slides 20] [--size 1280x720] [--words 18]

Columns: the narration's length, the whole render's wall time and its ratio to the narration
(goal: <= 0.35x on 2 cores), the render's peak memory (flat in the deck's length: compare
--slides 10 and 40), and what drawing the deck's pages costs (LibreOffice started once
for the whole deck, then pypdfium2 per page), measured on its own with a cold cache.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "custom_nodes"), str(REPO), str(REPO / "tests")]


def make_deck(path: Path, slides: int, words: int) -> Path:
    from pptx import Presentation
    from pptx.dml.color import RGBColor
    from pptx.util import Emu, Pt

    deck = Presentation()
    deck.slide_width, deck.slide_height = Emu(12192000), Emu(6858000)
    sentence = "Each slide says a few plain words about what it shows to the audience"
    for i in range(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        fill = slide.background.fill
        fill.solid()
        fill.fore_color.rgb = RGBColor(30 + 7 * i % 200, 60, 120)
        slide.shapes.title.text = f"Point {i + 1}"
        body = slide.placeholders[1].text_frame
        body.text = f"A bullet for slide {i + 1}"
        body.paragraphs[0].font.size = Pt(28)
        slide.notes_slide.notes_text_frame.text = " ".join(sentence.split()[:words]) + f", number {i + 1}."
    deck.save(str(path))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slides", type=int, default=20)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--words", type=int, default=14, help="words of notes per slide")
    args = parser.parse_args()
    from conftest import draw_portrait, ffprobe
    from podium.engines.deck import read_deck, render_pages

    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        deck = make_deck(tmp / "talk.pptx", args.slides, args.words)
        portrait = draw_portrait(tmp / "me.png", 480, 640)
        t0 = time.perf_counter()
        render_pages(read_deck(deck), width, height, tmp / "pages")
        pages_s = time.perf_counter() - t0
        env = {**os.environ, "PODIUM_CACHE_DIR": str(tmp / "cache"), "TMPDIR": str(tmp)}
        command = [sys.executable, "-c", "import sys; from orchestrator.cli.main import main; sys.exit(main())",
                   "generate", "--deck", str(deck), "--image", str(portrait), "--preset", "draft",
                   "--size", args.size, "--out", str(tmp / "talk.mp4"), "--quiet"]
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        narration = float(ffprobe(tmp / "talk.mp4", count_frames=False)["format"]["duration"])
    import resource

    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child: the render
    print("| slides | size | narration s | wall s | wall / narration | deck pages s (share) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.slides} | {args.size} | {narration:.1f} | {wall:.1f} | {wall / narration:.2f}x | "
          f"{pages_s:.1f} ({pages_s / wall:.0%}) | {peak_mb:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
