"""The webhook ingress: providers (or a user's poller) POST raw bodies to `/v1/{provider}/...`
over HTTP, each body on the raw topic before the provider hears "received". The server itself
is imported by `run_ingress` only when it runs: it pulls in uvicorn and aiokafka."""

from __future__ import annotations

from ._routes import PROVIDERS, ROUTES, IngressPath
from ._settings import IngressSettings, check_settings

__all__ = [
    "PROVIDERS",
    "ROUTES",
    "IngressPath",
    "IngressSettings",
    "check_settings",
    "run_ingress",
]


def run_ingress(settings: IngressSettings) -> int:
    """`python -m pipeline ingress`: serve until SIGTERM; the exit code."""
    from ._server import run_ingress as serve

    return serve(settings)
