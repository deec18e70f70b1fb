"""The shapes of a script as data, in pydantic: Podium's script JSON (what `--script x.json`
reads and guided mode writes) and the LLM's answer (whose JSON schema is Ollama's `format`).

Both share the segment fields a slide needs (bullets, speaker), and one way of naming what is
wrong: `segments[2].bullets: must be a list of strings`. Torch-free: the orchestrator reads
scripts with it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Optional

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, create_model,
                      field_validator, model_validator)

from ..errors import ScriptFormatError  # noqa: F401 (raised here; its home is errors.py)
from ..validation import field_path, problem_of
from .scene_spec import MOVES

FILE_SHAPE = '{"title": ..., "segments": [{"text": ...}]}'


class _Fields(BaseModel):
    """Unknown keys are ignored; a null is taken as the field left out."""

    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


Bullets = Annotated[list[str], Field(default_factory=list)]  # a slide's points, in both shapes


# --- Podium's script JSON (Script.to_dict()) ------------------------------------------------

class ScriptFileSegment(_Fields):
    text: str
    title: str = ""
    bullets: Bullets
    speaker: str = ""
    music: str = ""  # this segment's music prompt; its text may mark [sfx: sound] cues inline
    scene: str = ""  # the generated shot it plays over: "a lava lake at night, slow push-in"


class ScriptFile(_Fields):
    title: str = ""
    stage: str = ""
    music: str = ""  # the video's music prompt (`--music auto`)
    segments: list[ScriptFileSegment]


# --- the LLM's answer -----------------------------------------------------------------------

class _AnswerSegment(_Fields):
    """The checks of an answer's segment; its fields are added per request (answer_model)."""

    @field_validator("narration", check_fields=False)
    @classmethod
    def _spoken(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("camera", mode="before", check_fields=False)
    @classmethod
    def _known_move(cls, value: Any) -> Any:
        """A camera move not in the list is taken as none (static), not a reason to ask again."""
        said = " ".join(str(value).replace("_", " ").split()).lower() if isinstance(value, str) else value
        return said if said in MOVES else "static"

    @field_validator("speaker", mode="before", check_fields=False)
    @classmethod
    def _known_speaker(cls, value: Any, info: ValidationInfo) -> Any:
        """In a dialogue the speaker must be one asked for (any case); it comes back as asked."""
        names = (info.context or {}).get("speakers") or []
        if not isinstance(value, str):
            return value
        said = " ".join(value.split())
        for name in names:
            if said.lower() == name.lower():
                return name
        if not said:
            raise ValueError(f"is empty (expected one of {', '.join(names)})")
        shown = said if len(said) <= 40 else said[:39] + "…"
        raise ValueError(f"{shown!r} is not one of {', '.join(names)}")


class SoundEffect(_Fields):
    """A sound cue the model suggests: the sound, and the first words of the sentence it
    plays with (words, not a number: models count badly)."""

    sound: str
    sentence: str = ""


class Answer(_Fields):
    title: str = ""
    stage: str = ""
    music: str = ""  # the music the video should have (a prompt for the music model)
    segments: list[Any]
    sound_effects: Annotated[list[SoundEffect], Field(default_factory=list)]


@lru_cache(maxsize=32)
def _answer_model(speakers: tuple[str, ...]) -> type[Answer]:
    fields: dict[str, Any] = {}
    if len(speakers) > 1:  # a dialogue: each segment names one of them, first
        fields["speaker"] = (Literal[speakers], ...)
    fields.update(slide_title=(str, ""), narration=(str, ...), bullets=(Bullets, ...),
                  scene=(str, ""), camera=(Literal[MOVES], "static"))  # optional: a generated shot
    segment = create_model("Segment", __base__=_AnswerSegment, **fields)
    return create_model("Script", __base__=Answer,
                        segments=(Annotated[list[segment], Field(min_length=1)], ...))


def answer_model(speakers: Optional[list[str]] = None) -> type[Answer]:
    """The answer's model (fields in the order the model writes them: speaker, slide title,
    narration, bullets, then the optional scene and its camera move); with two or more speakers each segment must name one of them."""
    return _answer_model(tuple(speakers or ()) if speakers and len(speakers) > 1 else ())


def answer_schema(speakers: Optional[list[str]] = None) -> dict:
    """The JSON schema sent as Ollama's `format` (every field required, as the model answers)."""
    return answer_model(speakers).model_json_schema(mode="serialization")


# --- saying what is wrong -------------------------------------------------------------------

def format_error(err: ValidationError, source: str = "the script JSON") -> ScriptFormatError:
    """The first problem of a ValidationError, naming its field."""
    first = err.errors(include_url=False)[0]
    where, problem = field_path(tuple(first.get("loc", ()))), problem_of(first)
    if not where:
        problem = f"must be a JSON object {FILE_SHAPE}" if source == "the script JSON" else "must be a JSON object"
    elif where == "segments" and problem == "is missing" and source == "the script JSON":
        problem = f"is missing (a Podium script JSON is {FILE_SHAPE})"
    return ScriptFormatError(problem, where, source)
