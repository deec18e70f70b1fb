"""Guided-mode nodes: a local LLM (Ollama) writes the script from a topic.

Inside ComfyUI a graph comes from anyone who reaches the server, so its Ollama host must be
one the operator allows (ollama_hosts.confine_host; default: Ollama on this machine); run
in-process, the user's own host is used as given.
"""
import sys

from ..engines import guided, guided_prompt, ollama_chat, ollama_hosts
from ..engines.ollama_chat import OllamaSettings
from ..errors import PodiumError
from ..profiling import reported_stage
from .fingerprint import new_each_run


def _inside_comfyui() -> bool:
    return sys.modules.get("folder_paths") is not None  # ComfyUI's own module, loaded first


def _host_for_graph(host: str) -> str:
    """The host's URL; inside ComfyUI only one the operator allows (one neutral message)."""
    return ollama_hosts.confine_host(host or "") if _inside_comfyui() else ollama_hosts.check_host(host or "")


class PodiumOllamaSettings:
    """Which Ollama server and model write the script, and how."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "host": ("STRING", {"default": ollama_hosts.DEFAULT_HOST,
                                    "tooltip": "The Ollama server (`ollama serve` listens on http://127.0.0.1:11434). "
                                               f"Inside ComfyUI only the hosts the operator allows ({ollama_hosts.HOSTS_ENV}; default: this machine)."}),
                "model": ("STRING", {"default": ollama_chat.DEFAULT_MODEL,
                                     "tooltip": "An Ollama model you have pulled (`ollama pull llama3.2`); "
                                                "'choose an installed model' lists the allowed hosts' models."}),
                "keep_alive": ("STRING", {"default": "5m",
                                          "tooltip": "How long Ollama keeps the model loaded afterwards: '5m', '0' to unload now, '-1' forever."}),
                "temperature": ("FLOAT", {"default": 0.7, "min": 0.0, "max": 2.0, "step": 0.05,
                                          "tooltip": "Higher: more varied wording; lower: more predictable."}),
                "seed": ("INT", {"default": -1, "min": -1, "max": 2**31 - 1,
                                 "tooltip": "-1: a new script every run; any other number: the same script for the same inputs."}),
                "num_ctx": ("INT", {"default": 8192, "min": 1024, "max": 131072, "step": 1024,
                                    "tooltip": "Context length in tokens; long videos need more (and more memory)."}),
                "timeout_s": ("INT", {"default": 300, "min": 5, "max": 3600,
                                      "tooltip": "Give up when Ollama has not answered after this many seconds (a cold model load is slow)."}),
            },
        }

    RETURN_TYPES = ("PODIUM_OLLAMA",)
    RETURN_NAMES = ("settings",)
    FUNCTION = "make"
    CATEGORY = "Podium/script"
    DESCRIPTION = "Ollama server, model and sampling options for the guided script."

    @classmethod
    def IS_CHANGED(cls, seed=-1, **_):
        """-1: a new script each run, so never the cached one (the Guided Script node downstream
        re-runs with it: ComfyUI keys its cache on the ancestors' fingerprints too)."""
        return new_each_run() if seed is not None and seed < 0 else ""

    @classmethod
    def VALIDATE_INPUTS(cls, host="", model=""):
        if model is not None and not str(model).strip():
            return "model is empty: name an Ollama model, e.g. llama3.2"
        if host is None:  # linked from another node: checked when it runs
            return True
        try:
            _host_for_graph(host)
        except PodiumError as err:
            return str(err)
        return True

    def make(self, host, model, keep_alive, temperature, seed, num_ctx, timeout_s):
        _host_for_graph(host)
        options = {"temperature": float(temperature), "num_ctx": int(num_ctx)}
        if seed >= 0:
            options["seed"] = int(seed)
        return (OllamaSettings(host=host.strip() or ollama_hosts.DEFAULT_HOST, model=model.strip(),
                               keep_alive=keep_alive.strip(), options=options,
                               timeout_s=float(timeout_s)),)


class PodiumGuidedScript:
    """A local LLM writes the script from a topic: title, stage, segments with slides."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "topic": ("STRING", {"multiline": True, "default": "",
                                     "tooltip": "What the video is about; add anything the script must cover."}),
                "duration_s": ("INT", {"default": 60, "min": 10, "max": 3600,
                                       "tooltip": "Spoken length to aim for, in seconds."}),
                "language": ("STRING", {"default": "en", "tooltip": "Language of the script (a code like 'en', or a name)."}),
                "audience": ("STRING", {"default": "", "tooltip": "Who watches, e.g. 'high-school students'."}),
                "tone": ("STRING", {"default": "", "tooltip": "e.g. 'friendly', 'formal', 'enthusiastic'."}),
                "speakers": ("STRING", {"default": "",
                                        "tooltip": "Comma-separated names for a dialogue; empty: one narrator."}),
                "words_per_minute": ("INT", {"default": guided_prompt.DEFAULT_WORDS_PER_MINUTE, "min": 60, "max": 300,
                                             "tooltip": "Speaking rate of the voice, to size the script (Piper joe: 165)."}),
            },
            "optional": {
                "settings": ("PODIUM_OLLAMA", {"tooltip": "From Podium Ollama Settings; default: llama3.2 on the local Ollama."}),
            },
        }

    RETURN_TYPES = ("PODIUM_SCRIPT",)
    RETURN_NAMES = ("script",)
    FUNCTION = "write"
    CATEGORY = "Podium/script"
    DESCRIPTION = "Have a local LLM (Ollama) write the script from a topic."

    @reported_stage("script")
    def write(self, topic, duration_s, language, audience, tone, speakers, words_per_minute,
              settings=None):
        if not topic.strip():
            raise PodiumError("the guided script needs a topic: say what the video is about")
        if settings is not None and not isinstance(settings, OllamaSettings):
            raise PodiumError("settings must come from a Podium Ollama Settings node")
        _host_for_graph((settings or OllamaSettings()).host)
        return (guided.write_script(
            topic, settings or OllamaSettings(), duration_s=duration_s, language=language,
            audience=audience, tone=tone, speakers=speakers, words_per_minute=words_per_minute,
        ),)
