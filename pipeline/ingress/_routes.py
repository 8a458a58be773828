"""The ingress's paths: `/v1/{provider}/{endpoint}` for every endpoint a provider module decodes,
plus the push endpoints, each with the answer its sender expects."""

from __future__ import annotations

from typing import Final, NamedTuple

from ..core.providers import REGISTRY


class Answer(NamedTuple):
    body: bytes
    headers: list[tuple[bytes, bytes]]


class IngressPath(NamedTuple):
    provider: str
    endpoint: str
    #: The record headers every body of this path gets (account and content-type are added).
    headers: list[tuple[str, bytes]]
    success: Answer


def _answer(body: bytes, content_type: bytes) -> Answer:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", content_type))
    return Answer(body, headers)


#: Where providers push, and what they must hear back to not retry. Yunpian's push
#: documentation: "0" or "SUCCESS", anything else is retried. Tencent's callback contract: this
#: JSON. uSpeedo's and Ultiroam's documentation names no answer: an empty 200.
PUSH: Final[dict[str, tuple[str, Answer]]] = {
    "yunpian": ("push", _answer(b"SUCCESS", b"text/plain; charset=utf-8")),
    "tencent": ("callback", _answer(b'{"result":0,"errmsg":"OK"}', b"application/json")),
    "uspeedo": ("push", _answer(b"", b"")),
    "ultiroam": ("push", _answer(b"", b"")),
}
#: Poll and submit responses a user's own poller forwards.
FORWARDED: Final = _answer(b"{}", b"application/json")


def _routes() -> dict[str, IngressPath]:
    table = {}
    for provider, module in REGISTRY.items():
        push = PUSH.get(provider)
        answers = {endpoint: FORWARDED for endpoint in module.ENDPOINTS}
        if push is not None:
            answers[push[0]] = push[1]
        for endpoint, answer in answers.items():
            headers = [("provider", provider.encode()), ("endpoint", endpoint.encode())]
            table[f"/v1/{provider}/{endpoint}"] = IngressPath(provider, endpoint, headers, answer)
    return table


ROUTES: Final[dict[str, IngressPath]] = _routes()
PROVIDERS: Final = frozenset(REGISTRY)
