"""Talking to Ollama: one chat call within one deadline and a cap on what it reads, and its
failures as one line that says what to do."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Optional, Union

from ..errors import PodiumError
from .guided_answer import Limits, _Invalid, _TooLong, one_line
from .ollama_hosts import DEFAULT_HOST, display_host

DEFAULT_MODEL = "llama3.2"


@dataclass
class OllamaSettings:
    """Where and how to ask Ollama; passed between nodes as PODIUM_OLLAMA."""

    host: str = DEFAULT_HOST
    model: str = DEFAULT_MODEL
    keep_alive: Union[str, float, None] = "5m"  # how long Ollama keeps the model loaded after
    options: dict = field(default_factory=lambda: {"temperature": 0.7, "num_ctx": 8192})
    timeout_s: float = 300.0  # for each whole answer: a cold model load on a slow machine takes a while
    cli: bool = False  # messages name the CLI's flags (--llm-timeout) instead of the node's inputs


def _keep_alive(value):
    """Ollama takes a duration string ("5m") or a number of seconds (negative: forever)."""
    if value is None or isinstance(value, (int, float)):
        return value
    value = str(value).strip()
    if not value:
        return None
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        return value


def _names(settings: OllamaSettings) -> dict:
    """How the user sets each thing: the CLI's flags, or the node's inputs."""
    if settings.cli:
        return {"host": "--ollama-host", "timeout": "--llm-timeout", "model": "--llm-model"}
    return {"host": "host (Podium Ollama Settings)", "timeout": "timeout_s", "model": "model"}


def _unreachable(settings: OllamaSettings, why: str = "") -> PodiumError:
    return PodiumError(
        f"cannot reach Ollama at {display_host(settings.host)}{f' ({why})' if why else ''}: "
        f"start it with `ollama serve` or pass the right {_names(settings)['host']}"
    )


def _too_slow(settings: OllamaSettings) -> PodiumError:
    return PodiumError(
        f"Ollama at {display_host(settings.host)} did not answer within {settings.timeout_s:g} s "
        f"(model '{settings.model}' may still be loading, or is too slow on this machine): "
        f"raise the timeout ({_names(settings)['timeout']}) or use a smaller model"
    )


def _not_ollama(settings: OllamaSettings, status: Optional[int] = None) -> PodiumError:
    answered = f"answered {status} to /api/chat" if status else "answered /api/chat with something other than Ollama's JSON"
    return PodiumError(
        f"the server at {display_host(settings.host)} {answered}: it is not an Ollama server; "
        f"start Ollama with `ollama serve` or pass the right {_names(settings)['host']}"
    )


def _pulled_models(client) -> list[str]:
    try:
        listing = client.list()
        return [m.model for m in listing.models if m.model]
    except Exception:
        return []


def _response_error(err, settings: OllamaSettings, client) -> Exception:
    """An ollama.ResponseError as what to do about it (an _Invalid when worth retrying).
    The server's own words are read, never repeated: they can be anything."""
    status, said = getattr(err, "status_code", -1), str(getattr(err, "error", "")).lower()
    host = display_host(settings.host)
    if status == 404 and "not found" in said and "model" in said:
        pulled = _pulled_models(client)
        have = f" (this server has: {', '.join(one_line(m, 60) for m in pulled[:8])})" if pulled else ""
        return PodiumError(f"model '{settings.model}' is not pulled on the Ollama at {host}{have}: "
                           f"run `ollama pull {settings.model}`")
    if status == -1:  # an error inside a streamed answer: the run broke off
        return _Invalid("Ollama reported an error mid-answer (its log says which)")
    if status in (404, 405) or 300 <= status < 400 or status in (502, 503, 504) or said.startswith("<"):
        return _not_ollama(settings, status)  # Ollama's own errors are JSON; this is something else
    if status >= 500:
        return PodiumError(f"Ollama at {host} failed running model '{settings.model}' (status "
                           f"{status}): see the Ollama server log, or try a smaller model")
    return PodiumError(f"Ollama at {host} rejected the request for model '{settings.model}' "
                       f"(status {status}): see the Ollama server log")


class _Guard:
    """One deadline for a whole chat call and a cap on the bytes it reads (reset per call)."""

    def __init__(self, max_bytes: int = 1 << 62):
        self.deadline, self.max_bytes, self.read = float("inf"), max_bytes, 0

    def restart(self, timeout_s: float) -> "_Guard":
        self.deadline, self.read = time.monotonic() + timeout_s, 0
        return self

    def left(self, request=None) -> float:
        import httpx

        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpx.ReadTimeout("the deadline of the whole call has passed", request=request)
        return left


def _guarded_transport(guard: _Guard):
    """An httpx transport that keeps every request within the guard's deadline and bytes."""
    import httpx

    class Stream(httpx.SyncByteStream):
        def __init__(self, inner, request):
            self.inner, self.request = inner, request

        def __iter__(self):
            for chunk in self.inner:
                guard.read += len(chunk)
                if guard.read > guard.max_bytes:
                    raise _TooLong(f"the answer is over {guard.max_bytes // 1000:,} KB")
                guard.left(self.request)
                yield chunk

        def close(self):
            self.inner.close()

    class Transport(httpx.BaseTransport):
        def __init__(self):
            self.inner = httpx.HTTPTransport()
            pool = self.inner._pool  # httpx builds its pool with httpcore's default backend: no public hook
            pool._network_backend = _deadline_backend(pool._network_backend, guard)

        def handle_request(self, request):
            left = guard.left(request)
            timeouts = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {k: left if timeouts.get(k) is None else min(timeouts[k], left)
                                             for k in ("connect", "read", "write", "pool")}
            response = self.inner.handle_request(request)
            return httpx.Response(response.status_code, headers=response.headers,
                                  stream=Stream(response.stream, request), extensions=response.extensions)

        def close(self):
            self.inner.close()

    return Transport()


def _deadline_backend(inner, guard: _Guard):
    """httpcore's network backend with every socket read bounded by the guard's deadline, so a
    server that drips bytes (headers or body) never outlasts the call, and the call runs in the
    caller's thread: nothing is left behind reading after a timeout."""
    import httpcore

    def bounded(timeout):
        left = guard.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the deadline of the whole call has passed")
        return left if timeout is None else min(timeout, left)

    class Stream(httpcore.NetworkStream):
        def __init__(self, stream):
            self.stream = stream

        def read(self, max_bytes, timeout=None):
            return self.stream.read(max_bytes, bounded(timeout))

        def write(self, buffer, timeout=None):
            self.stream.write(buffer, timeout)

        def close(self):
            self.stream.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return Stream(self.stream.start_tls(ssl_context, server_hostname, timeout))

        def get_extra_info(self, info):
            return self.stream.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            return Stream(inner.connect_tcp(host, port, timeout, local_address, socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            return Stream(inner.connect_unix_socket(path, timeout, socket_options))

        def sleep(self, seconds):
            inner.sleep(seconds)

    return Backend()


def _chat_once(client, settings: OllamaSettings, messages: list[dict], format_: dict,
               options: dict, stream: bool, guard: Optional[_Guard] = None,
               limits: Optional[Limits] = None) -> str:
    """One chat call within one deadline; the answer's text, or _Invalid / PodiumError."""
    import httpx
    import ollama

    guard = (guard or _Guard()).restart(settings.timeout_s)
    max_chars = limits.chars if limits else 1 << 62
    kwargs = dict(model=settings.model, messages=messages, format=format_, options=options,
                  keep_alive=_keep_alive(settings.keep_alive))

    def call():
        if stream:
            parts, size, reason, done = [], 0, None, False
            for chunk in client.chat(stream=True, **kwargs):
                piece = chunk.message.content or ""
                parts.append(piece)
                size += len(piece)
                if size > max_chars:
                    raise _TooLong(f"the answer is over {max_chars:,} characters")
                if chunk.done:
                    done, reason = True, chunk.done_reason
            if not done:
                raise _Invalid("the answer stream ended before the model finished (cut mid-answer)")
            return "".join(parts), reason
        response = client.chat(stream=False, **kwargs)
        return response.message.content or "", response.done_reason

    try:
        content, reason = call()
    except ollama.ResponseError as err:
        raise _response_error(err, settings, client) from None
    except httpx.ConnectTimeout:
        raise _unreachable(settings, f"no connection within {settings.timeout_s:g} s") from None
    except httpx.TimeoutException:
        raise _too_slow(settings) from None
    except (ConnectionError, httpx.ConnectError):  # the client turns ConnectError into ConnectionError
        raise _unreachable(settings) from None
    except (httpx.RemoteProtocolError, httpx.ReadError):
        raise _Invalid("the connection was cut mid-answer") from None
    except json.JSONDecodeError as err:
        if not err.doc.lstrip().startswith("{"):  # every line Ollama sends is a JSON object
            raise _not_ollama(settings) from None
        raise _Invalid("the answer stream was cut mid-line") from None
    except httpx.HTTPError as err:
        raise _unreachable(settings, type(err).__name__) from None
    except ValueError:  # pydantic's ValidationError: a chunk that is not Ollama's shape
        raise _not_ollama(settings) from None
    if reason == "length":
        raise _Invalid("the answer was cut at the model's length limit (done_reason 'length'; "
                       "a larger num_ctx helps)")
    if len(content) > max_chars:
        raise _TooLong(f"the answer is over {max_chars:,} characters")
    return content
