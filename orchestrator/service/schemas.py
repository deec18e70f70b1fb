"""What the API takes and gives: the job request (pydantic, extra fields refused) and the
job as JSON. A bad value is named by its field (`options.fps: ...`)."""
from __future__ import annotations

import functools
import re
from typing import Annotated, Collection, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from podium.errors import PodiumError
from podium.validation import field_path, problem_of

from orchestrator.request import (
    DEFAULT_VOICE,
    LONG_MINUTES,
    LONG_SEGMENTS,
    Mode,
    Preset,
    RenderOptions,
    Topic,
    _profile_name,
    preset_names,
    too_long,
)
from orchestrator.service.store import Job

MAX_TEXT = 200_000  # characters of narration read at all (the length limit is in words and segments)
__all__ = ["JobRequest", "JobView", "JobList", "RequestError", "preset_names", "voice_ids"]


class RequestError(Exception):
    """A request value that cannot be used: `field` names it, `status` is the HTTP code."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message, self.status = field, message, status


@functools.lru_cache(maxsize=1)
def voice_ids() -> tuple[str, ...]:
    from podium.models import ids_of_kind

    return tuple(ids_of_kind("piper-voice"))


class JobRequest(BaseModel):
    """POST /api/jobs as JSON (multipart sends the same fields as form fields, `options` as a
    JSON string, with the files `image`, `voice_ref`, `deck` and `notes`)."""

    model_config = ConfigDict(extra="forbid")
    mode: Mode = "direct"
    text: Optional[str] = Field(None, max_length=MAX_TEXT, description=(
        f"direct: the narration (plain text or Markdown), at most {LONG_MINUTES} min of it "
        f"(at 150 words a minute) in {LONG_SEGMENTS} segments"))
    topic: Optional[Topic] = Field(None, description="guided: what the video is about")
    preset: Preset = Field("auto", description="auto, or a preset of workflows/presets.yaml")
    voice: str = Field(DEFAULT_VOICE, description="a Piper voice id of models.yaml")
    profile: Annotated[Optional[str], AfterValidator(_profile_name)] = Field(None, description=(
        "one of your profiles (POST /api/profiles): its portrait, voice sample and transcript; the "
        "video's metadata and the job name it and the consent's date"))
    options: RenderOptions = Field(default_factory=RenderOptions)

    @field_validator("text")
    @classmethod
    def _length(cls, value: Optional[str]) -> Optional[str]:
        """A text too long to render is refused now, with the limit (a job never fails for it)."""
        from podium.engines.script import parse_script
        from podium.engines.script_schema import ScriptFormatError

        if not value or not value.strip():
            return value
        try:
            what = too_long(parse_script(value))
        except ScriptFormatError:
            return value  # not a script it can read: the render says so, in its own words
        if what is not None:
            raise ValueError(f"the narration is {what}: a job renders at most {LONG_MINUTES} min or "
                             f"{LONG_SEGMENTS} segments; split it into several jobs")
        return value

    @field_validator("voice")
    @classmethod
    def _voice(cls, value: str) -> str:
        try:
            known = voice_ids()
        except PodiumError:
            known = (DEFAULT_VOICE,)
        if value not in known:
            raise ValueError(f"unknown voice {value!r}: choose one of {', '.join(known)} "
                             "(a Piper voice id of models.yaml; files are not taken)")
        return value

    def check(self, uploads: Collection[str] = ()) -> None:
        """What the fields cannot say alone: the narration or topic the mode needs (a deck
        upload brings its own: its notes, or guided mode writes them)."""
        if self.profile is not None and "image" in uploads:
            raise RequestError("image", "the profile brings its portrait: drop the image upload, or the profile")
        if "notes" in uploads and "deck" not in uploads:
            raise RequestError("notes", "go with a deck: upload the slides (deck) too, or drop the notes")
        if "deck" in uploads:
            self._check_deck()
        elif self.mode == "direct":
            if self.topic is not None:
                raise RequestError("topic", "goes with mode guided; in direct mode give text")
            if self.text is None or not self.text.strip():
                raise RequestError("text", "give the narration (mode direct), or mode guided with a topic")
        else:
            if self.text is not None:
                raise RequestError("text", "goes with mode direct; in guided mode give a topic")
            if self.topic is None or not self.topic.strip():
                raise RequestError("topic", "guided mode needs a topic: what the video is about")

    def _check_deck(self) -> None:
        if self.text is not None and self.text.strip():
            raise RequestError("text", "a deck brings its own narration (its speaker notes, or a notes "
                                       "upload): drop the text")
        if self.topic is not None and self.topic.strip():
            raise RequestError("topic", "a deck is narrated from its slides: drop the topic")
        if self.options.layout == "full":
            raise RequestError("options.layout", "a deck is shown with layout pip or slides, not full")


class SegmentView(BaseModel):
    index: int
    state: Literal["pending", "running", "done", "cached"]
    stage: Optional[str] = Field(None, description="the stage (node title) it is in while running")
    progress: float = Field(ge=0, le=1)


class StageView(BaseModel):
    name: str
    seconds: float = Field(description="time spent in it so far, over all segments")
    runs: int


class JobView(BaseModel):
    """A job as the API answers it."""

    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1)
    eta_s: Optional[float] = Field(None, description="seconds left, once a segment has been rendering")
    error: Optional[str] = Field(None, description="why it failed (state failed)")
    created: float
    updated: float
    started: Optional[float] = None
    finished: Optional[float] = None
    attempts: int = Field(description="runs started (a restart of the server adds one)")
    mode: Optional[str] = None
    preset: Optional[str] = None
    voice: Optional[str] = None
    profile: Optional[str] = Field(None, description="the profile the video is made with")
    consent_date: Optional[str] = Field(None, description="the date of that profile's consent")
    title: str
    segments: list[SegmentView]
    stages: list[StageView]
    reused: Optional[int] = Field(None, description="segments taken from the cache")
    failovers: int = 0
    worker: Optional[str] = Field(None, description="with --broker: the `podium worker` that has it")
    slides: Optional[int] = Field(None, description=(
        "with a deck: its slide count (known at submission); each segment is then a slide"))
    slide_titles: list[str] = Field(default_factory=list, description="with a deck: each slide's title")
    request: dict
    uploads: list[str]
    links: dict[str, str] = Field(description=(
        "self; video and subtitles (.srt) once done, captions (.ass) with them; notes: a guided deck job's narration, to edit and send again"))


class JobList(BaseModel):
    jobs: list[JobView]
    counts: dict[str, int]


def validation_error(errors: list[dict], skip: int = 0) -> RequestError:
    """The first of pydantic's (or FastAPI's) errors as a RequestError naming its field
    (`skip`: leading parts of its location that name no field, like FastAPI's "query")."""
    first = errors[0]
    field = field_path(tuple(first.get("loc", ()))[skip:]) or "body"
    problem = problem_of(first)
    if first.get("type") == "extra_forbidden":
        problem = "is not a field this API takes"
    elif first.get("type") == "value_error":
        problem = str(first.get("msg", "")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return RequestError(field, problem + more)


def job_view(job: Job, base: str = "/api/jobs", full: bool = True) -> dict:
    """A job as GET /api/jobs/{id} answers it (`full=False`, for lists: the request without
    its text)."""
    detail = job.detail or {}
    deck = job.request.get("deck") or {}
    view = {
        "id": job.id, "state": job.state, "progress": job.progress, "eta_s": job.eta_s,
        "error": job.error if job.state == "failed" else None,
        "created": job.created, "updated": job.updated, "started": job.started,
        "finished": job.finished, "attempts": job.attempts,
        "mode": job.request.get("mode"), "preset": job.request.get("preset"),
        "voice": job.request.get("voice"),
        "profile": job.request.get("profile"),
        "consent_date": (job.request.get("consent") or {}).get("date"),
        "title": _title(job.request),
        "segments": detail.get("segments", []), "stages": detail.get("stages", []),
        "reused": detail.get("reused"), "failovers": detail.get("failovers", 0),
        "worker": detail.get("worker"),  # with a broker: the `podium worker` that has it
        "slides": deck.get("count"), "slide_titles": deck.get("titles", []) if full else [],
        "request": {k: v for k, v in job.request.items() if k not in ("inputs", "deck", "consent")
                    and (full or k != "text")},
        "uploads": sorted((job.request.get("inputs") or {})),
        "links": {"self": f"{base}/{job.id}"},
    }
    if "video" in job.outputs:
        view["links"]["video"] = f"{base}/{job.id}/video"
    if "subtitles" in job.outputs:
        view["links"]["subtitles"] = f"{base}/{job.id}/subtitles"
    if "captions" in job.outputs:  # the .ass written beside the .srt
        view["links"]["captions"] = f"{base}/{job.id}/subtitles?format=ass"
    if "notes" in job.outputs:
        view["links"]["notes"] = f"{base}/{job.id}/notes"
    return view


def _title(request: dict) -> str:
    """A few words to list the job by: the topic, or the script's title or first line."""
    source = request.get("topic") or request.get("text") or ""
    if not source.strip() and request.get("deck"):  # a deck: its first slide's title
        source = next((t for t in request["deck"].get("titles", []) if t), "")
    for line in source.splitlines():
        line = re.sub(r"^#+\s*", "", line).strip()
        if line:
            return line[:80]
    return ""
