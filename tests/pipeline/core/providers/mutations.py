"""One way to damage valid bodies, shared by every provider's fuzz test."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

#: Bytes that are most likely to confuse a JSON, form or XML decoder when inserted anywhere.
JUNK: Sequence[bytes] = (b"[", b"{", b'"', b"\\", b"\xff", b"1e400", b"null", b",", b"<", b"&")


@st.composite
def mutated(
    draw: st.DrawFn, bodies: st.SearchStrategy[bytes], junk: Sequence[bytes] = JUNK
) -> bytes:
    """A body from `bodies`, truncated, byte-flipped and/or with junk inserted, 1-5 times."""
    body = draw(bodies)
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["truncate", "flip", "insert"]))
        at = draw(st.integers(0, len(body)))
        if op == "truncate":
            body = body[:at]
        elif op == "flip" and at < len(body):
            body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
        else:
            piece = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(junk))
            body = body[:at] + piece + body[at:]
    return body
