"""Hostile and malformed bodies for the poison test, each with the error class it must get."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from unittest import mock

from aiokafka.producer import message_accumulator
from aiokafka.producer import producer as aiokafka_producer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from benchmarks.generators.noise import ENTITY_BOMB
from pipeline.core import Decoder, InputRecord
from pipeline.errors import DecodeError, NotReceipts

MIB = 1024 * 1024

QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "'
    + b"A" * 50_000
    + b'">]><result>'
    + b"&a;" * 20_000
    + b"</result>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE result [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b"<result><entry>true</entry><entry>200</entry><entry>&xxe;</entry></result>"
)
EXTERNAL_DTD = (
    b'<?xml version="1.0"?>\n<!DOCTYPE result SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
    b"<result><entry>true</entry></result>"
)
PARAMETER_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE result [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>'
    b"\n<result/>"
)
PROVIDER_ERRORS: Sequence[tuple[str, str, bytes]] = (
    (
        "uspeedo",
        "GetUSMSSendReceipt",
        b'{"Action":"GetUSMSSendReceiptResponse","Message":"Missing params","RetCode":215397}',
    ),
    ("ultiroam", "query_sms_result", b'{"error_code":413,"sn":"1A2B-3C4D-5E6F-7A8B"}'),
    (
        "smspartner",
        "bulk-status",
        b'{"success":false,"code":10,"message":"Cl\xc3\xa9 API incorrecte"}',
    ),
    (
        "smspartner",
        "bulk-status",
        b"<?xml version='1.0' encoding='UTF-8'?>\n<result>\n<entry>false</entry>\n"
        b"<entry>4</entry>\n<entry>Message non trouv\xc3\xa9</entry>\n</result>",
    ),
    (
        "tencent",
        "PullSmsSendStatus",
        b'{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"bad signature"},'
        b'"RequestId":"0f0e0d0c-0b0a-0908-0706-050403020100"}}',
    ),
)
WRONG_TYPES: Sequence[tuple[str, str, bytes]] = (
    (
        "uspeedo",
        "GetUSMSSendReceipt",
        b'{"Action":"GetUSMSSendReceiptResponse","RetCode":0,"Data":"not a list"}',
    ),
    ("uspeedo", "push", b'{"MsgType":2,"Data":[{"Phone":13800138000,"State":true}]}'),
    ("ultiroam", "query_sms_result", b'{"error_code":200,"sn":"1A2B","sms_result":{"a":1}}'),
    (
        "tencent",
        "PullSmsSendStatus",
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":5,"PhoneNumber":[],'
        b'"ReportStatus":7}],"RequestId":"x"}}',
    ),
    ("tencent", "callback", b'[{"sid":{"x":1},"report_status":["SUCCESS"]}]'),
    ("yunpian", "push", b"sms_status=%7B%22sid%22%3A%5B1%5D%7D"),
    ("smspartner", "bulk-status", b'{"success":true,"code":200,"StatutResponse_List":"none"}'),
)
UNKNOWN_SHAPES: Sequence[bytes] = (
    b'{"hello":"world"}',
    b"[1,2,3]",
    b"null",
    b"OK",
    b"",
    b"\x00\x01\x02\x03binary",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
)


def _receipts(decoder: Decoder, record: InputRecord) -> bool:
    try:
        return bool(decoder.decode(record))
    except (DecodeError, NotReceipts):
        return False


def _labelled(provider: str, endpoint: str) -> list[tuple[str, bytes]]:
    return [("provider", provider.encode()), ("endpoint", endpoint.encode())]


def hostile(
    good: Sequence[InputRecord], count: int, seed: int, stamp: int, huge: int = 3
) -> list[tuple[str, str, InputRecord]]:
    """`count` hostile records (plus `huge` 9 MiB bodies): (kind, error class, record).

    Well-formed labelled receipt bodies of `good` are mutated (truncated, UTF-8 spoilt).
    """
    rng = random.Random(seed)
    decoder = Decoder()
    good = [r for r in good if _receipts(decoder, r)]
    labelled = [r for r in good if any(k == "provider" for k, _ in r.headers)]
    json_bodies = [r for r in labelled if r.value.lstrip()[:1] in (b"{", b"[")]
    out: list[tuple[str, str, InputRecord]] = []

    def add(kind: str, error: str, body: bytes, headers: list[tuple[str, bytes]]) -> None:
        out.append((kind, error, InputRecord("", 0, 0, stamp + len(out), headers, body)))

    for i in range(count):
        pick = i % 10
        if pick in (0, 1):
            src = rng.choice(labelled)
            body = src.value.rstrip()
            add(
                "truncated",
                "MalformedBody",
                body[: rng.randint(1, len(body) - 2)],
                list(src.headers),
            )
        elif pick == 2:
            # Spoil a recipient's number: a field every decoder reads.
            while True:
                src = rng.choice(json_bodies)
                events = decoder.decode(src)
                raw = b'"' + events[rng.randrange(len(events))].recipient_raw.encode() + b'"'
                at = src.value.find(raw)
                if at >= 0:
                    break
            body = src.value[: at + 2] + b"\xff\xfe\xc3" + src.value[at + 2 :]
            add("invalid_utf8", "MalformedBody", body, list(src.headers))
        elif pick == 3:
            bomb = (ENTITY_BOMB, QUADRATIC, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY)[
                rng.randrange(5)
            ]
            headers = _labelled("smspartner", "bulk-status") if rng.random() < 0.5 else []
            add("xml_attack", "UnsafeXml", bomb, headers)
        elif pick == 4:
            depth = rng.choice((1000, 20_000, 200_000))
            provider, endpoint, opener = rng.choice(
                (
                    ("uspeedo", "GetUSMSSendReceipt", b'{"RetCode":0,"Data":'),
                    ("tencent", "callback", b""),
                    ("ultiroam", "query_sms_result", b'{"error_code":200,"sms_result":'),
                )
            )
            body = opener + b"[" * depth + b"]" * depth + (b"}" if opener else b"")
            add("deep_nesting", "MalformedBody", body, _labelled(provider, endpoint))
        elif pick == 5:
            provider, endpoint, body = rng.choice(WRONG_TYPES)
            add("wrong_type", "MalformedBody", body, _labelled(provider, endpoint))
        elif pick == 6:
            provider, endpoint, body = rng.choice(PROVIDER_ERRORS)
            headers = _labelled(provider, endpoint) if rng.random() < 0.7 else []
            add("provider_error", "ProviderError", body, headers)
        elif pick == 7:
            add("unknown_shape", "UnknownFormat", rng.choice(UNKNOWN_SHAPES), [])
        elif pick == 8:
            body = rng.choice(labelled).value
            add(
                "unknown_provider",
                "UnknownFormat",
                body,
                [("provider", rng.choice((b"acme", b"", b"USPEEDO", b"\xc3\xa9")))],
            )
        else:
            src = rng.choice(labelled)
            add(
                "unknown_endpoint",
                "UnknownFormat",
                src.value,
                [("provider", dict(src.headers)["provider"]), ("endpoint", b"nope")],
            )
    for i in range(huge):
        # Incompressible, so no compression on the way can shrink it under a limit.
        body = (
            os.urandom(9 * MIB)
            if i % 2
            else b'{"RetCode":0,"Data":"' + os.urandom(9 * MIB // 2).hex().encode() + b'"}'
        )
        add(
            "oversized",
            "BodyTooLarge",
            body,
            _labelled("uspeedo", "GetUSMSSendReceipt") if i % 3 == 0 else [],
        )
    return out


class RawKey(str):
    """A header key whose bytes on the wire are `raw`, e.g. not UTF-8 (the record format and
    librdkafka allow any bytes; aiokafka encodes every key with `str.encode`)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawKey:
        key = super().__new__(cls, raw.decode("latin-1"))
        key.raw = raw
        return key

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@contextlib.contextmanager
def raw_header_keys() -> Iterator[None]:
    """Producers writing inside this block build batches with aiokafka's pure-Python builder,
    which encodes header keys with `RawKey.encode` (the C builder reads the str's own UTF-8)."""
    py = _DefaultRecordBatchBuilderPy
    with (
        mock.patch.object(message_accumulator, "DefaultRecordBatchBuilder", py),
        mock.patch.object(aiokafka_producer, "DefaultRecordBatchBuilder", py),
    ):
        yield
