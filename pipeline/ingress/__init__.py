"""The webhook ingress (DESIGN.md section 8): provider pushes and forwarded poll responses in
over HTTP, each body on the raw topic before the provider hears "received". The server itself
is in `_server` (imported by the `ingress` command only: it pulls in uvicorn and aiokafka)."""

from ._routes import ROUTES, Route
from ._settings import IngressSettings

__all__ = ["ROUTES", "IngressSettings", "Route"]
