"""What a `[scene: ...]` mark asks for, read from its text: the shot's prompt, the camera move
(the last clause, from a short list), whether the presenter appears (`with the presenter`), and
an optional clip length (`6s`). Pure text, no torch: the script parser and the orchestrator
check marks with it before any rendering.

    [scene: a lava lake glowing at night, slow push-in]
    [scene: a lecture hall at dawn with the presenter, pan left, 4s]
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ScriptFormatError


def _bad(problem: str) -> ScriptFormatError:
    return ScriptFormatError(problem, "", "the script")

MOVES = ("static", "push-in", "pull-out", "pan left", "pan right", "tilt up", "tilt down")
MAX_PROMPT = 1000  # characters: a text encoder reads a few hundred tokens at most
MAX_SECONDS = 60.0
SPOKEN_WORDS_PER_S = 2.5  # a narrator's pace: what a scene's narration is estimated to last
_SPEED = r"(?:(?:very\s+)?(?:slow|slowly|gentle|fast|quick)\s+)?"
_MOVE = re.compile(rf"^{_SPEED}(static|still|push[\s-]?in|zoom[\s-]?in|pull[\s-]?out|zoom[\s-]?out|"
                   rf"pan[\s-]+(?:left|right)|tilt[\s-]+(?:up|down))$", re.I)
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)$", re.I)
_PRESENTER = re.compile(r"\bwith the presenter\b", re.I)
_ALIASES = {"still": "static", "zoom-in": "push-in", "zoom-out": "pull-out"}


@dataclass(frozen=True)
class SceneSpec:
    """A scene mark, read: `prompt` (what the shot shows, the move and length clauses taken
    off), `move` (one of MOVES), `with_presenter`, `seconds` (0: as long as the narration,
    up to one clip)."""

    prompt: str
    move: str = "static"
    with_presenter: bool = False
    seconds: float = 0.0

    @property
    def model_prompt(self) -> str:
        """What the video model is told: the shot (the presenter as the person in the first
        frame), then the camera move in words."""
        shot = _PRESENTER.sub("with the same person as in the first frame", self.prompt)
        return shot if self.move == "static" else f"{shot}, camera {self.move}"


def _move_of(clause: str) -> str:
    found = _MOVE.match(" ".join(clause.split()))
    if not found:
        return ""
    word = re.sub(r"[\s-]+", "-", found.group(1).lower())
    word = _ALIASES.get(word, word)
    return word.replace("pan-", "pan ").replace("tilt-", "tilt ")


def read_scene(text: str) -> SceneSpec:
    """The spec of a scene mark's text; a ScriptFormatError (one line) when it cannot be a shot."""
    text = " ".join(str(text).split())
    if len(text) > MAX_PROMPT:
        raise _bad(f"a [scene: ...] prompt is {len(text)} characters; keep it under "
                                f"{MAX_PROMPT} (what the shot shows and a camera move)")
    clauses = [c.strip() for c in text.split(",")]
    move, seconds = "", 0.0
    while clauses:  # the trailing clauses that are a move or a length
        last = clauses[-1]
        if _SECONDS.match(last) and not seconds:
            seconds = float(_SECONDS.match(last).group(1))
        elif _move_of(last) and not move:
            move = _move_of(last)
        else:
            break
        clauses.pop()
    move = move or "static"
    prompt = ", ".join(c for c in clauses if c)
    if not prompt:
        raise _bad("a [scene: ...] mark has no prompt: say what the shot shows, e.g. "
                                "[scene: a lava lake glowing at night, slow push-in]")
    if seconds and not 0.5 <= seconds <= MAX_SECONDS:
        raise _bad(f"a [scene: ...] asks for {seconds:g} s: give 0.5 to {MAX_SECONDS:g} s")
    return SceneSpec(prompt, move, bool(_PRESENTER.search(prompt)), seconds)


def check_fits(spec: SceneSpec, words: int) -> None:
    """A scene must not be longer than its narration: a mark with no narration after it, or a
    length (`6s`) beyond what its words take to say (at SPOKEN_WORDS_PER_S, plus a second)."""
    if words == 0:
        raise _bad(f"[scene: {spec.prompt}] has no narration after it (up to the next scene "
                                "mark or the paragraph's end): write what is said over it")
    said = words / SPOKEN_WORDS_PER_S
    if spec.seconds > said + 1.0:
        raise _bad(f"[scene: {spec.prompt}] asks for {spec.seconds:g} s but its narration "
                                f"({words} words) takes about {said:.1f} s: shorten the shot or say more")


_OPEN = re.compile(r"\[\s*scene\s*:", re.I)


def scene_parts(text: str) -> list[tuple[str, str]]:
    """A paragraph cut at its scene marks: [(scene text, the narration over it), ...]; the
    first part (before any mark) has no scene (""). Marks are checked here: each must close
    (`]`) before another `[`, and must not sit inside another mark."""
    parts, scene, pos = [], "", 0
    for found in _OPEN.finditer(text):
        if found.start() < pos:
            continue
        before = text[:found.start()]
        if before.count("[") > before.count("]"):
            raise _bad(f"a [scene: ...] mark sits inside another mark (near {text[found.start():][:40]!r}): "
                       "close the first mark with ] before the scene mark")
        end, inner = text.find("]", found.end()), text.find("[", found.end())
        if end < 0:
            raise _bad(f"a [scene: ...] mark is not closed (near {text[found.start():][:40]!r}): end it with ]")
        if 0 <= inner < end:
            raise _bad(f"a [scene: ...] mark holds another mark (near {text[found.start():][:40]!r}): "
                       "marks cannot be nested; close the scene mark with ] first")
        parts.append((scene, text[pos:found.start()]))
        scene, pos = " ".join(text[found.end():end].split()), end + 1
        read_scene(scene)  # an empty or too long prompt: said here, before anything runs
    parts.append((scene, text[pos:]))
    return [(s, t) for s, t in parts if s or t.strip()]
