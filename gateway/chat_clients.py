"""One chat request per deployment target, each through that target's own client.

Every function takes (deployment, messages, max_tokens) and returns (text, finish reason, raw
response); decoding is greedy (temperature 0) so a smoke test is repeatable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.errors import ProviderError
from gateway.retry import describe, http_timeout_s


def _with_system(dep: Any, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system = (dep.meta or {}).get("system")
    if system and (not messages or messages[0]["role"] != "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def _ollama(
    dep: Any, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    import ollama

    client = ollama.Client(host=dep.endpoint, timeout=http_timeout_s())
    try:
        res = client.chat(
            model=dep.name,
            messages=messages,
            options={"temperature": 0, "num_predict": max_tokens},
            stream=False,
        )
    except ollama.ResponseError as exc:
        raise ProviderError(f"Ollama: {exc.error} (HTTP {exc.status_code})") from None
    except ConnectionError as exc:
        raise ProviderError(
            f"cannot reach Ollama at {dep.endpoint}: {exc}", fix="start it with `ollama serve`"
        ) from None
    return res.message.content or "", res.done_reason, res.model_dump(mode="json")


def _llamacpp(
    dep: Any, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    """The GGUF in-process; llama-cpp-python formats the chat with the GGUF's own template."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(dep.endpoint), n_ctx=2048, verbose=False)
    try:
        res = llm.create_chat_completion(
            _with_system(dep, messages), max_tokens=max_tokens, temperature=0.0
        )
    finally:
        llm.close()
    choice = res["choices"][0]
    return choice["message"]["content"] or "", choice["finish_reason"], dict(res)


def _completion(
    provider: str, client: Any, model: str, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    """One chat completion through an OpenAI-style SDK (OpenAI, Together, Fireworks)."""
    try:
        res = client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0
        )
    except Exception as exc:
        raise ProviderError(f"{provider} chat failed: {describe(exc)}") from None
    choice = res.choices[0]
    reason = getattr(choice.finish_reason, "value", choice.finish_reason)
    return choice.message.content or "", reason, res.model_dump(mode="json")


def _openai(
    dep: Any, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    from openai import OpenAI

    from gateway.secrets import require

    key = require("OPENAI_API_KEY", "OpenAI")
    client = OpenAI(api_key=key, max_retries=2, timeout=http_timeout_s())
    return _completion("OpenAI", client, str(dep.endpoint), messages, max_tokens)


def _together(
    dep: Any, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    from together import Together

    from gateway.secrets import require

    key = require("TOGETHER_API_KEY", "Together")
    client = Together(api_key=key, max_retries=2, timeout=http_timeout_s())
    return _completion("Together", client, str(dep.endpoint), messages, max_tokens)


def _fireworks(
    dep: Any, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    from providers.fireworks import Fireworks

    client = Fireworks().client()
    return _completion("Fireworks", client, str(dep.endpoint), messages, max_tokens)


def _bedrock(
    dep: Any, messages: list[dict[str, str]], max_tokens: int
) -> tuple[str, str | None, dict]:
    from providers.bedrock_import import chat

    try:
        return chat(dep.meta, messages, max_tokens)
    except Exception as exc:
        raise ProviderError(f"Bedrock Converse failed: {describe(exc)}") from None


CLIENTS: dict[str, Callable[[Any, list[dict[str, str]], int], tuple[str, str | None, dict]]] = {
    "ollama": _ollama,
    "llamacpp": _llamacpp,
    "openai": _openai,
    "fireworks": _fireworks,
    "bedrock": _bedrock,
    "together": _together,
}
