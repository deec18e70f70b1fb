"""What `podium serve` and `podium worker` take from the environment when no option says
(pydantic-settings: one typed place instead of os.environ reads beside each option)."""
from __future__ import annotations

from typing import Optional

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_OLLAMA = "http://127.0.0.1:11434"


class ServiceEnvironment(BaseSettings):
    """PODIUM_TOKEN (kept out of the process list) and OLLAMA_HOST (as Ollama's own tools read it)."""

    model_config = SettingsConfigDict(extra="ignore")
    podium_token: Optional[str] = None
    ollama_host: str = DEFAULT_OLLAMA


def fill_from_environment(args) -> None:
    """Options not given on the command line (None) from the environment; an empty variable is unset."""
    env = ServiceEnvironment()
    if args.token is None:
        args.token = env.podium_token or None
    if args.ollama_host is None:
        args.ollama_host = env.ollama_host or DEFAULT_OLLAMA
