"""A vLLM-shaped Chat Completions server for tests: NOT the scripted model.

Built from vLLM's documented OpenAI-compatible response shape, with its own (byte-level) chat
template and its own two-step policy, so that a test against it proves gymstream reads vLLM's
fields, not the scripted model's:

- ``POST /v1/chat/completions`` with ``logprobs: true`` and ``return_tokens_as_token_ids: true``
  answers ``choices[0].logprobs.content[i] = {"token": "token_id:<n>", "logprob", "bytes",
  "top_logprobs"}``; with ``return_token_ids: true`` also ``prompt_token_ids`` at the top level
  and ``choices[0].token_ids`` (vLLM >= 0.10.2), unless ``prompt_ids=False`` (an older vLLM:
  the client must ``POST /tokenize``);
- ``POST /tokenize`` (at the server root, as vLLM) answers ``{"count", "max_model_len",
  "tokens", "token_strs"}`` for a chat request;
- ``drop=True`` ignores the logprobs request (``"logprobs": null``), as a server without the
  feature does;
- ``reasoning="..."`` puts that text in the text answer's ``reasoning_content``, as vLLM's
  reasoning parser does.

Policy: the first turn calls the first tool with ``{"city": "Tokyo"}``; after a tool output it
answers in text. Every request body and every answer is recorded (``requests``, ``answers``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["VllmFake", "render_prompt"]


def _render(message: dict[str, Any]) -> str:
    text = message.get("content") or ""
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text)
    for call in message.get("tool_calls") or []:
        function = call["function"]
        text += f"<tool_call>{function['name']}:{function['arguments']}</tool_call>"
    return text + "<|im_end|>"


def render_prompt(messages: list[dict[str, Any]]) -> list[int]:
    """The fake's chat template, byte-level: ``<|im_start|>role`` + body + ``<|im_end|>``."""
    text = "".join(f"<|im_start|>{m['role']}\n{_render(m)}" for m in messages)
    return list((text + "<|im_start|>assistant\n").encode())


class VllmFake:
    """The running fake (a thread); ``url`` ends in ``/v1``. ``stop()`` shuts it down."""

    def __init__(
        self, *, prompt_ids: bool = True, drop: bool = False, reasoning: str | None = None
    ) -> None:
        self.prompt_ids = prompt_ids
        self.drop = drop
        self.reasoning = reasoning
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = fake.answer(self.path, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((path, body))
        if path == "/tokenize":
            tokens = render_prompt(body["messages"])
            return 200, {
                "count": len(tokens),
                "max_model_len": 32768,
                "tokens": tokens,
                "token_strs": None,
            }
        if path != "/v1/chat/completions":
            return 404, {"object": "error", "message": f"no route {path}", "code": 404}
        answer = self._complete(body)
        with self._lock:
            self.answers.append(answer)
        return 200, answer

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        tools = body.get("tools") or []
        message: dict[str, Any] = {
            "role": "assistant",
            "reasoning_content": None,
            "content": None,
            "tool_calls": [],
        }
        if tools and messages[-1]["role"] != "tool":
            name = tools[0]["function"]["name"]
            message["tool_calls"] = [
                {
                    "id": f"chatcmpl-tool-{len(self.answers)}",
                    "type": "function",
                    "function": {"name": name, "arguments": '{"city": "Tokyo"}'},
                }
            ]
        else:
            message["content"] = "It is sunny in Tokyo."
            message["reasoning_content"] = self.reasoning
        generation = list(_render(message).encode())
        prompt = render_prompt(messages)
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "tool_calls" if message["tool_calls"] else "stop",
            "stop_reason": None,
        }
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.answers)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": len(generation),
                "total_tokens": len(prompt) + len(generation),
            },
            "prompt_logprobs": None,
            "kv_transfer_params": None,
        }
        wants = body.get("logprobs") and body.get("return_tokens_as_token_ids")
        if wants and not self.drop:
            choice["logprobs"] = {
                "content": [
                    {
                        "token": f"token_id:{t}",
                        "logprob": -0.001 * (i % 50),
                        "bytes": [t],
                        "top_logprobs": [],
                    }
                    for i, t in enumerate(generation)
                ]
            }
            if body.get("return_token_ids") and self.prompt_ids:
                answer["prompt_token_ids"] = prompt
                choice["token_ids"] = generation
        return answer
