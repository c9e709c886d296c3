"""OpenAI-compatible endpoints of the engine emulator: /v1/models, /v1/completions, /v1/chat/completions.

Shapes follow vLLM's OpenAI server (ids `cmpl-...`/`chatcmpl-...`, `usage`, `finish_reason`, SSE `data:` frames
ending with `data: [DONE]`). The text is filler: one word per generated token, so the token counts in `usage`
and in `/metrics` agree. Every request goes through the batching model, so latency reflects the load.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from llmsched.emulators.engine_sim import Sequence, count_tokens
from llmsched.emulators.engine_state import EngineState

STATE_KEY = web.AppKey("engine_state", EngineState)
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
DEFAULT_MAX_TOKENS = 16


def _error(status: int, message: str, err_type: str) -> web.Response:
    return web.json_response(
        {"object": "error", "message": message, "type": err_type, "param": None, "code": status}, status=status
    )


def _word(i: int) -> str:
    return " " + WORDS[i % len(WORDS)]


def _prompt_of(body: dict[str, Any], chat: bool) -> tuple[str | list[int], int]:
    """(the prompt as the prefix cache sees it: text, or token ids; prompt token count)."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        text = "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in messages if isinstance(m, dict))
        return text, count_tokens(text)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return prompt, len(prompt)  # pre-tokenized prompt
    if isinstance(prompt, list):
        prompt = "".join(str(p) for p in prompt)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string")
    return prompt, count_tokens(prompt)


def _usage(seq: Sequence) -> dict[str, Any]:
    return {
        "prompt_tokens": seq.prompt_tokens,
        "total_tokens": seq.prompt_tokens + seq.generated,
        "completion_tokens": seq.generated,
        "prompt_tokens_details": None,
    }


async def models(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    spec = state.spec
    return web.json_response(
        {
            "object": "list",
            "data": [
                {
                    "id": spec.model,
                    "object": "model",
                    "created": int(state.started),
                    "owned_by": spec.engine,
                    "root": spec.model,
                    "parent": None,
                    "max_model_len": spec.context_limit,
                }
            ],
        }
    )


async def _generate(request: web.Request, chat: bool) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        model = body.get("model", state.spec.model)
        if model != state.spec.model:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        text, prompt_tokens = _prompt_of(body, chat)
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        core, seq = state.submit(text, prompt_tokens, max_tokens)
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc), "BadRequestError")
    rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    try:
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, state, seq, rid, chat, include_usage)
        return await _whole(state, seq, rid, chat)
    finally:
        core.abort(seq)  # no-op when finished; frees the KV if the client went away mid-request


async def _whole(state: EngineState, seq: Sequence, rid: str, chat: bool) -> web.Response:
    tokens: list[int] = []
    while (tok := await seq.events.get()) is not None:
        tokens.append(tok)
    text = "".join(_word(i) for i in tokens)
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": seq.finish_reason, "stop_reason": None}
    if chat:
        choice["message"] = {"role": "assistant", "content": text, "tool_calls": []}
    else:
        choice["text"] = text
    return web.json_response(
        {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": state.spec.model,
            "choices": [choice],
            "usage": _usage(seq),
        }
    )


async def _stream(
    request: web.Request, state: EngineState, seq: Sequence, rid: str, chat: bool, include_usage: bool
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    obj = "chat.completion.chunk" if chat else "text_completion"
    created = int(time.time())

    async def send(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> None:
        chunk: dict[str, Any] = {
            "id": rid,
            "object": obj,
            "created": created,
            "model": state.spec.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

    if chat:  # vLLM opens a chat stream with the role
        await send(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]
        )
    while (tok := await seq.events.get()) is not None:
        last = seq.finish_reason is not None and tok == seq.generated - 1 and seq.events.qsize() == 1
        reason = seq.finish_reason if last else None
        if chat:
            await send([{"index": 0, "delta": {"content": _word(tok)}, "logprobs": None, "finish_reason": reason}])
        else:
            await send(
                [{"index": 0, "text": _word(tok), "logprobs": None, "finish_reason": reason, "stop_reason": None}]
            )
    if include_usage:
        await send([], _usage(seq))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=False)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=True)


def add_openai_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
