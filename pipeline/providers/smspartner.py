"""SMS Partner `bulk-status` poll (seed 003): a JSON response, or the same data as positional XML.

The XML is parsed with expat directly, with every DTD construct refused: `StartDoctypeDeclHandler`
fires on `<!DOCTYPE` before any of its internal subset is read, so entity declarations (billion
laughs, quadratic blowup) and external entities (SYSTEM/PUBLIC file or URL) are never processed,
let alone expanded or fetched; a body with no DTD cannot define entities at all (`&x;` is then an
expat "undefined entity" error). The whole body goes to expat in one `Parse` call (no re-parsing
of partial tokens), the tree is built with an explicit stack capped at 4 levels, and text pieces
are joined once: the work is linear in the body.
"""

from __future__ import annotations

import re
from typing import Final
from xml.parsers import expat

import msgspec

from schemas import ReceiptEvent, Status
from schemas.smspartner import SmsPartnerReport, SmsPartnerResponse

from ..normalise._context import RecordContext
from ..normalise._errors import MalformedBody, ProviderError, UnknownFormat, UnsafeXml
from ..normalise._fields import e164, make_event, map_status, national_fr
from ..normalise._timefmt import provider_time
from ._shared import decode_json, id_text

PROVIDER: Final = "smspartner"
ENDPOINTS: Final = ("bulk-status",)
DEFAULT_TZ: Final = "Europe/Paris"

# Header aliases: the generic channel name and the API paths (bulk and single-message status).
_ALIASES: Final = frozenset({"bulk-status", "poll", "bulk_status", "bulkStatus", "message-status"})
_ENDPOINT: Final = "smspartner.bulk-status"
_DECODER = msgspec.json.Decoder(SmsPartnerResponse)
_STATUS: Final[dict[str, Status]] = {
    "Delivered": "DELIVERED",
    "Not delivered": "UNDELIVERED",
    "Waiting": "SENT",
}
_BOOL: Final[dict[str, bool | None]] = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "": None,
}

# Sniff rules. The JSON keys `StatutResponse_List`, `success` + `code` (lower case) are SMS
# Partner's own: uSpeedo uses `RetCode`/`Action`, Ultiroam `error_code`/`sn`, Tencent
# `Response`/`Code`, Yunpian is a form body. No other provider sends XML, so any body starting
# with `<` is ours: claiming hostile XML here makes it an UnsafeXml dead letter rather than an
# unknown format.
_LEAD = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*")
_LIST_KEY = re.compile(rb'"StatutResponse_List"\s*:')
_SUCCESS_KEY = re.compile(rb'"success"\s*:')
_CODE_KEY = re.compile(rb'"code"\s*:')
_SNIFF_HEAD = 65536


def sniff(body: bytes) -> str | None:
    start = _LEAD.match(body).end()  # type: ignore[union-attr]  # always matches (may be empty)
    first = body[start : start + 1]
    if first == b"<":
        return "bulk-status"
    if first != b"{":
        return None
    head = body[:_SNIFF_HEAD]
    if _LIST_KEY.search(head) or (_SUCCESS_KEY.search(head) and _CODE_KEY.search(head)):
        return "bulk-status"
    return None


# -- XML ----------------------------------------------------------------------------------------

_MAX_DEPTH = 4  # result / recipients wrapper / recipient / field


class _Node(msgspec.Struct, gc=False):
    """One element: its tag, its text pieces, its child elements (a C-level struct: cheap)."""

    name: str
    text: list[str]
    children: list[_Node]


_UNSAFE = "smspartner XML with a DTD, entity declaration or external reference refused"


def _refuse(*_args: object) -> None:
    raise UnsafeXml(_UNSAFE)


def _refuse_external(*_args: object) -> int:
    raise UnsafeXml(_UNSAFE)


def parse_xml(body: bytes) -> _Node:
    """The element tree of `body`, refusing every DTD construct (see the module docstring)."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.NotationDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse_external
    parser.SkippedEntityHandler = _refuse
    # Closures over locals: the handlers run once per element, so no attribute look-ups.
    root = _Node("", [], [])
    stack = [root]

    def start(name: str, _attrs: object) -> None:
        if len(stack) > _MAX_DEPTH:
            raise MalformedBody(f"smspartner XML nested deeper than {_MAX_DEPTH} levels")
        node = _Node(name, [], [])
        stack[-1].children.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        stack[-1].text.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise MalformedBody(f"smspartner invalid XML: {exc}") from None
    except (LookupError, ValueError, UnicodeError) as exc:  # declared encodings expat can't use
        raise MalformedBody(f"smspartner invalid XML: {exc}") from None
    return root.children[0]  # expat refuses a document without exactly one root element


def _leaf(node: _Node, what: str) -> str:
    if node.name != "entry" or node.children:
        raise MalformedBody(f"smspartner XML: {what} is not a plain <entry>")
    # CDATA and the whitespace around it are trimmed.
    return "".join(node.text).strip()


def _xml_reports(body: bytes) -> tuple[str, list[tuple[str, str, str, str]]]:
    """(message_id, [(phone, status, stopSMS, date)]) from the positional XML.

    `<result>`: success, code, message_id (or the error message), then the recipients. The seed
    wraps all recipients in one more `<entry>`; one `<entry>` per recipient directly under
    `<result>` is accepted too. A recipient holds exactly four plain entries.
    """
    root = parse_xml(body)
    if root.name != "result":
        raise MalformedBody(f"smspartner XML root is <{root.name}>, not <result>")
    entries = root.children
    if not entries:
        raise MalformedBody("smspartner XML <result> has no entries")
    success_text = _leaf(entries[0], "success")
    success = _BOOL.get(success_text.lower())
    if success is None:
        raise MalformedBody(f"smspartner XML success is not a boolean: {success_text!r}")
    head = [_leaf(entries[1], "code")] if len(entries) > 1 else ["?"]
    head.append(_leaf(entries[2], "message_id") if len(entries) > 2 else "")
    if not success:  # the third entry is then the error message
        raise ProviderError(f"smspartner error {head[0]}: {head[1]}")
    if len(entries) < 3:
        raise MalformedBody(
            f"smspartner XML has {len(entries)} entries; expected success, code, message_id"
        )
    message_id = head[1]
    if not message_id:
        raise MalformedBody("smspartner XML has an empty message_id")
    reports: list[tuple[str, str, str, str]] = []
    for position, entry in enumerate(entries[3:], 4):
        if entry.name != "entry":
            raise MalformedBody(f"smspartner XML: <{entry.name}> where an <entry> belongs")
        kids = entry.children
        if not kids:
            if "".join(entry.text).strip():
                raise MalformedBody(f"smspartner XML entry {position} is text, not recipients")
            continue  # an empty recipient list
        recipients = kids if all(k.children for k in kids) else [entry]
        for recipient in recipients:
            fields = recipient.children
            if len(fields) != 4 or recipient.name != "entry":
                raise MalformedBody(
                    f"smspartner XML recipient {len(reports)} has {len(fields)} fields, expected 4"
                )
            phone, status, stop, date = (_leaf(f, "recipient field") for f in fields)
            reports.append((phone, status, stop, date))
    return message_id, reports


def _opt_out(text: str) -> bool | None:
    key = text.lower()
    if key not in _BOOL:
        raise MalformedBody(f"smspartner stopSMS is not a boolean: {text!r}")
    return _BOOL[key]


# -- decode -------------------------------------------------------------------------------------


def _json_reports(body: bytes) -> tuple[str | None, list[SmsPartnerReport]]:
    resp = decode_json(_DECODER, body, "smspartner bulk-status")
    if resp.success is False:
        raise ProviderError(f"smspartner error {resp.code}: {resp.message}")
    top_id = id_text(resp.message_id if resp.message_id is not None else resp.messageId)
    reports = resp.StatutResponse_List
    if reports is msgspec.UNSET:
        if resp.status is None and resp.statut is None:
            raise UnknownFormat(
                "smspartner response has neither StatutResponse_List nor a report's fields"
            )
        return top_id, [resp]  # the single-message form: one report at the top level
    return top_id, reports or []


def decode(body: bytes, endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    if endpoint not in _ALIASES:
        raise UnknownFormat(f"smspartner has no endpoint {endpoint!r}")
    zone = ctx.tz or DEFAULT_TZ
    start = _LEAD.match(body).end()  # type: ignore[union-attr]  # always matches
    if body[start : start + 1] == b"<":
        return _decode_xml(body, ctx, zone)
    return _decode_json(body, ctx, zone)


def _decode_xml(body: bytes, ctx: RecordContext, zone: str) -> list[ReceiptEvent]:
    message_id, rows = _xml_reports(body)
    return [
        _event(ctx, index, message_id, phone, status, _opt_out(stop), date, zone)
        for index, (phone, status, stop, date) in enumerate(rows)
    ]


def _decode_json(body: bytes, ctx: RecordContext, zone: str) -> list[ReceiptEvent]:
    top_id, reports = _json_reports(body)
    events = []
    for index, r in enumerate(reports):
        mid = r.messageId if r.messageId is not None else r.message_id
        message_id = id_text(mid) if mid is not None else top_id
        phone = r.phoneNumber if r.phoneNumber is not None else r.number
        status = r.status if r.status is not None else r.statut
        if not message_id or phone is None or status is None:
            missing = "message_id" if not message_id else "phone" if phone is None else "status"
            raise MalformedBody(f"smspartner report {index} lacks {missing}")
        stop_sms = r.stopSMS if r.stopSMS is not None else r.stopSms
        events.append(_event(ctx, index, message_id, phone, status, stop_sms, r.date, zone))
    return events


def _event(
    ctx: RecordContext,
    index: int,
    message_id: str,
    phone: str,
    raw_status: str,
    opt_out: bool | None,
    date: int | str | None,
    zone: str,
) -> ReceiptEvent:
    if not phone.strip():
        raise MalformedBody(f"smspartner report {index} has an empty phone number")
    recipient = e164(phone, None, national_fr)
    occurred_at, occurred_raw, time_zone = provider_time(date, zone)
    return make_event(
        ctx,
        provider=PROVIDER,
        channel="poll",
        endpoint=_ENDPOINT,
        index=index,
        message_key=f"{message_id}|{recipient}",
        batch_id=message_id,
        status=map_status(PROVIDER, _STATUS, raw_status),
        provider_status=raw_status,
        recipient_raw=phone,
        recipient=recipient,
        opt_out=opt_out,
        occurred_at=occurred_at,
        occurred_at_raw=occurred_raw,
        time_zone=time_zone,
    )
