"""Token ids and log-probs from a model answer, as NeMo Gym's ``vllm_model`` reads them.

Asked for with ``ModelSettings.return_token_id_information`` (NeMo Gym's option):

- Chat Completions (vLLM, SGLang): the request gets ``TOKEN_REQUEST`` (``logprobs: true``,
  ``top_logprobs: 0``, ``return_tokens_as_token_ids: true``, ``return_token_ids: true``).
  ``read_chat_tokens`` takes, in NeMo Gym 0.7.0's order: a complete bundle on the assistant
  message; else the generation ids and log-probs from ``choice.logprobs.content[i]`` (each token
  ``"token_id:<n>"``) with the prompt ids from the top-level ``prompt_token_ids`` (and
  ``choice.token_ids``, which must agree); else the prompt ids come from vLLM's
  ``POST /tokenize`` of the same chat request (``tokenize_request``, ``read_tokenize``).
- Responses API (NeMo Gym's own model servers): the fields come on the turn's last output item
  and pass through unchanged; ``check_response_tokens`` only checks they are there and sound.

Never silently without: an answer without them, with ids and log-probs of different lengths,
or with malformed tokens raises ``ModelResponseError`` with failure class
``model_token_ids_missing`` (terminal) whose message names the server setting to turn on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gymstream.errors import ModelResponseError
from gymstream.nemo_gym.outputs.token_ids import (
    GENERATION_LOG_PROBS,
    GENERATION_TOKEN_IDS,
    PROMPT_TOKEN_IDS,
    ROUTED_EXPERTS,
)
from gymstream.wire.messages import FailureClass

__all__ = [
    "TOKEN_REQUEST",
    "check_response_tokens",
    "prompt_ids",
    "read_chat_tokens",
    "read_tokenize",
    "token_fields",
    "tokenize_request",
]

TOKEN_REQUEST: Final[Mapping[str, Any]] = {
    "logprobs": True,
    "top_logprobs": 0,  # only the chosen token; vLLM returns none when top_logprobs is null
    "return_tokens_as_token_ids": True,
    "return_token_ids": True,
}
"""What a Chat Completions request gets when token ids are asked for (vLLM's parameters)."""

_TOKENIZE_FIELDS: Final = (
    "model",
    "messages",
    "tools",
    "chat_template_kwargs",
    "mm_processor_kwargs",
)
_TOKEN_PREFIX: Final = "token_id:"  # noqa: S105 (a key name, not a password)
_CHAT_HINT: Final = (
    "Token ids were asked for (return_token_id_information / GYMSTREAM_MODEL_RETURN_TOKEN_IDS): "
    "serve the model with vLLM, which honours logprobs, top_logprobs=0, "
    "return_tokens_as_token_ids and return_token_ids per request (or start it with "
    "--return-tokens-as-token-ids, and keep --max-logprobs >= 0), or turn the option off."
)
_RESPONSES_HINT: Final = (
    "Token ids were asked for (return_token_id_information / GYMSTREAM_MODEL_RETURN_TOKEN_IDS): "
    "set `return_token_id_information: true` on the NeMo Gym model server (vllm_model) behind "
    "this Responses endpoint, use `api: chat_completions` against vLLM directly, or turn the "
    "option off."
)


def _missing(url: str, problem: str, hint: str = _CHAT_HINT) -> ModelResponseError:
    return ModelResponseError(
        f"model endpoint {url}: {problem}. {hint}",
        failure_class=FailureClass.MODEL_TOKEN_IDS_MISSING,
    )


def _int_list(value: Any, where: str, url: str, hint: str = _CHAT_HINT) -> list[int]:
    if not isinstance(value, list) or not all(type(x) is int for x in value):
        raise _missing(url, f"{where} is not a list of integer token ids", hint)
    return value


def _float_list(value: Any, where: str, url: str, hint: str = _CHAT_HINT) -> list[float]:
    if not isinstance(value, list) or not all(type(x) in (int, float) for x in value):
        raise _missing(url, f"{where} is not a list of numeric log-probs", hint)
    return [float(x) for x in value]


def token_fields(
    prompt: list[int], generation: list[int], log_probs: list[float]
) -> dict[str, Any]:
    """The three fields, in NeMo Gym's order, as they go on a turn's last output item."""
    return {
        PROMPT_TOKEN_IDS: prompt,
        GENERATION_TOKEN_IDS: generation,
        GENERATION_LOG_PROBS: log_probs,
    }


def _bundle(item: Mapping[str, Any], where: str, url: str, hint: str) -> dict[str, Any] | None:
    """The item's own complete bundle (None when it has none); partial or unequal raises."""
    present = [
        f for f in (PROMPT_TOKEN_IDS, GENERATION_TOKEN_IDS, GENERATION_LOG_PROBS) if f in item
    ]
    if not present:
        return None
    if len(present) < 3:
        absent = sorted(
            {PROMPT_TOKEN_IDS, GENERATION_TOKEN_IDS, GENERATION_LOG_PROBS} - set(present)
        )
        raise _missing(url, f"{where} has partial token ids (missing {', '.join(absent)})", hint)
    fields = token_fields(
        _int_list(item[PROMPT_TOKEN_IDS], f"{where}.{PROMPT_TOKEN_IDS}", url, hint),
        _int_list(item[GENERATION_TOKEN_IDS], f"{where}.{GENERATION_TOKEN_IDS}", url, hint),
        _float_list(item[GENERATION_LOG_PROBS], f"{where}.{GENERATION_LOG_PROBS}", url, hint),
    )
    _same_length(fields, where, url, hint)
    if item.get(ROUTED_EXPERTS) is not None:
        fields[ROUTED_EXPERTS] = item[ROUTED_EXPERTS]
    return fields


def _same_length(fields: Mapping[str, Any], where: str, url: str, hint: str) -> None:
    ids, log_probs = fields[GENERATION_TOKEN_IDS], fields[GENERATION_LOG_PROBS]
    if len(ids) != len(log_probs):
        raise _missing(
            url,
            f"{where} has {len(ids)} generation token ids but {len(log_probs)} log-probs",
            hint,
        )


def _logprob_tokens(choice: Mapping[str, Any], url: str) -> tuple[list[int], list[float]]:
    block = choice.get("logprobs")
    content = block.get("content") if isinstance(block, dict) else None
    if not isinstance(content, list):
        raise _missing(url, f"the answer has no per-token logprobs (choice.logprobs={block!r:.80})")
    ids: list[int] = []
    log_probs: list[float] = []
    for index, entry in enumerate(content):
        token = entry.get("token") if isinstance(entry, dict) else None
        digits = token[len(_TOKEN_PREFIX) :] if isinstance(token, str) else ""
        if not (isinstance(token, str) and token.startswith(_TOKEN_PREFIX) and digits.isdigit()):
            raise _missing(
                url,
                f"choice.logprobs.content[{index}].token is {token!r:.40}, not 'token_id:<n>' "
                "(the server ignored return_tokens_as_token_ids)",
            )
        log_prob = entry.get("logprob")
        if type(log_prob) not in (int, float):
            raise _missing(url, f"choice.logprobs.content[{index}].logprob is not a number")
        ids.append(int(digits))
        log_probs.append(float(log_prob))
    return ids, log_probs


def read_chat_tokens(
    answer: Mapping[str, Any], url: str
) -> tuple[dict[str, Any] | None, list[int], list[float]]:
    """(a complete bundle from the message, or None; generation ids; log-probs).

    When the bundle is None the caller still needs the prompt ids: the top-level
    ``prompt_token_ids`` of the answer (``prompt_ids``) or ``POST /tokenize``.
    """
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        raise ModelResponseError(
            f"model endpoint {url}: chat completion has no choices[0]",
            failure_class=FailureClass.MODEL_MALFORMED_RESPONSE,
        )
    message = choice.get("message") or {}
    bundle = _bundle(message, "choice.message", url, _CHAT_HINT)
    if bundle is not None:
        return bundle, bundle[GENERATION_TOKEN_IDS], bundle[GENERATION_LOG_PROBS]
    ids, log_probs = _logprob_tokens(choice, url)
    returned = choice.get("token_ids")
    if returned is not None and _int_list(returned, "choice.token_ids", url) != ids:
        raise _missing(url, "choice.token_ids disagree with the token ids of choice.logprobs")
    return None, ids, log_probs


def prompt_ids(answer: Mapping[str, Any], url: str) -> list[int] | None:
    """The answer's top-level ``prompt_token_ids`` (vLLM with return_token_ids), or None."""
    value = answer.get(PROMPT_TOKEN_IDS)
    return None if value is None else _int_list(value, PROMPT_TOKEN_IDS, url)


def tokenize_request(chat: Mapping[str, Any]) -> dict[str, Any]:
    """The ``POST /tokenize`` body that renders exactly the prompt of ``chat`` (vLLM)."""
    return {k: chat[k] for k in _TOKENIZE_FIELDS if k in chat}


def read_tokenize(answer: Mapping[str, Any], url: str) -> list[int]:
    """The prompt ids of a ``/tokenize`` answer (``{"tokens": [...], "count": n}``)."""
    return _int_list(answer.get("tokens"), "tokenize.tokens", url)


def check_response_tokens(response: Mapping[str, Any], url: str) -> None:
    """A Responses API answer must carry the three fields on its last output item."""
    output = response.get("output") or []
    last = output[-1] if output else None
    if (
        not isinstance(last, dict)
        or _bundle(last, "the last output item", url, _RESPONSES_HINT) is None
    ):
        raise _missing(url, "the response's last output item carries no token ids", _RESPONSES_HINT)
