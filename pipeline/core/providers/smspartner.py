"""SMS Partner `bulk-status` poll: a JSON response, or the same data as positional XML.

The XML is parsed with expat directly, with every DTD construct refused: `StartDoctypeDeclHandler`
fires on `<!DOCTYPE` before any of its internal subset is read, so entity declarations (billion
laughs, quadratic blowup) and external entities (SYSTEM/PUBLIC file or URL) are never processed,
let alone expanded or fetched; a body with no DTD cannot define entities at all (`&x;` is then an
expat "undefined entity" error). The whole body goes to expat in one `Parse` call (no re-parsing
of partial tokens); the structure is checked as each element opens, no tree is built, and text
pieces are joined once: the work is linear in the body and stops at the first wrong element.
"""

from __future__ import annotations

import re
from typing import Final
from xml.parsers import expat

import msgspec

from schemas import ReceiptEvent, Status
from schemas.smspartner import SmsPartnerReport, SmsPartnerResponse

from ...errors import MalformedBody, ProviderError, UnknownFormat, UnsafeXml
from ..normalise import (
    Lookup,
    NumberValue,
    RecordContext,
    TimeValue,
    boolean,
    integer,
    key_part,
    make_event,
    map_status,
    national_fr,
    parse_time,
    recipient,
)
from ._partial import each_report
from ._shared import by_report, decode_json

PROVIDER: Final = "smspartner"
ENDPOINTS: Final = ("bulk-status",)
DEFAULT_TZ: Final = "Europe/Paris"

# Header aliases: the generic channel name and the API paths (bulk and single-message status).
_ALIASES: Final = frozenset({"bulk-status", "poll", "bulk_status", "bulkStatus", "message-status"})
_ENDPOINT: Final = "smspartner.bulk-status"
SKIP_KINDS: Final = frozenset[str]()
_DECODER = msgspec.json.Decoder(SmsPartnerResponse)
_STATUS: Final = Lookup[Status](
    {"Delivered": "DELIVERED", "Not delivered": "UNDELIVERED", "Waiting": "SENT"}
)
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
    # A substring test (a fast scan) before each regex (a slow one): most heads have none.
    if (b'"StatutResponse_List"' in head and _LIST_KEY.search(head)) or (
        b'"success"' in head
        and _SUCCESS_KEY.search(head)
        and b'"code"' in head
        and _CODE_KEY.search(head)
    ):
        return "bulk-status"
    return None


# -- XML ----------------------------------------------------------------------------------------

_MAX_DEPTH = 4  # result / recipients wrapper / recipient / field
_FIELDS = 4  # phone, status, stopSMS, date
_HEAD = ("success", "code", "message_id")
_UNSAFE = "smspartner XML with a DTD, entity declaration or external reference refused"


def _refuse(*_args: object) -> None:
    raise UnsafeXml(_UNSAFE)


def _refuse_external(*_args: object) -> int:
    raise UnsafeXml(_UNSAFE)


def _parser() -> expat.XMLParserType:
    """An expat parser that refuses every DTD construct (see the module docstring)."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.NotationDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse_external
    parser.SkippedEntityHandler = _refuse
    parser.buffer_text = True
    return parser


def _plain(what: str) -> MalformedBody:
    return MalformedBody(f"smspartner XML: {what} is not a plain <entry>")


#: One XML recipient: its four fields, or why it has none.
XmlRow = tuple[str, str, str, str] | str


def _xml_reports(body: bytes) -> tuple[str, list[XmlRow]]:
    """(message_id, [(phone, status, stopSMS, date)]) from the positional XML.

    `<result>`: success, code, message_id (or the error message), then the recipients. The seed
    wraps all recipients in one more `<entry>`; one `<entry>` per recipient directly under
    `<result>` is accepted too. A recipient holds exactly four plain entries.

    The structure is checked while expat parses, element by element (names, depth, child
    counts), and the first violation stops the parse: no tree is built, so a hostile body
    costs no more than its first wrong element, and memory holds only the reports.
    """
    head: list[str] = []
    reports: list[XmlRow] = []
    fields: list[str] = []  # of the recipient being read
    text: list[str] = []  # since the innermost element started: a leaf's text at its end
    empties: list[None] = []  # empty recipient lists seen
    # The open element's depth; of the entry after the head being read ("group"): its child
    # count and whether they are recipients (a wrapper) or fields (a recipient itself).
    depth = 0
    group_kids = 0
    group_wraps: bool | None = None  # None: undecided; True: kids are recipients; False: fields
    kid_kids = 0

    def start(name: str, _attrs: object) -> None:
        nonlocal depth, group_kids, group_wraps, kid_kids
        depth += 1
        text.clear()
        if depth == 1:
            if name != "result":
                raise MalformedBody(f"smspartner XML root is <{name}>, not <result>")
            return
        if name != "entry":
            raise MalformedBody(f"smspartner XML: <{name}> where an <entry> belongs")
        if depth > _MAX_DEPTH:
            raise MalformedBody(f"smspartner XML nested deeper than {_MAX_DEPTH} levels")
        if depth == 2:
            group_kids, group_wraps = 0, None
            return
        if len(head) < len(_HEAD):  # a child inside success, code or message_id
            raise _plain(_HEAD[len(head)])
        if depth == 3:
            group_kids += 1
            kid_kids = 0
            if group_wraps is False and group_kids > _FIELDS:
                raise MalformedBody(
                    f"smspartner XML recipient {len(reports)} has more than {_FIELDS} fields"
                )
            return
        # depth 4: a field of a recipient inside the wrapper
        if group_wraps is False:
            raise _plain("recipient field")
        group_wraps = True
        kid_kids += 1
        if kid_kids > _FIELDS:
            raise MalformedBody(
                f"smspartner XML recipient {len(reports)} has more than {_FIELDS} fields"
            )

    def end(_name: str) -> None:
        nonlocal depth, group_wraps
        depth -= 1
        if depth == 1:  # an entry directly under <result>
            if len(head) < len(_HEAD):
                _head_entry("".join(text).strip())
            elif group_kids == 0:
                if "".join(text).strip():
                    raise MalformedBody("smspartner XML: an entry after the head is text")
                empties.append(None)
                if len(empties) > 1:  # one empty recipient list is a body; more are noise
                    raise MalformedBody("smspartner XML has more than one empty recipient list")
            elif not group_wraps:
                _recipient()
        elif depth == 2:  # a recipient of the wrapper, or a field of a direct recipient
            if kid_kids:
                _recipient()
            elif group_wraps:
                reports.append(f"has 0 fields, expected {_FIELDS}")
            else:
                group_wraps = False
                fields.append("".join(text).strip())
        elif depth == 3:
            fields.append("".join(text).strip())
        text.clear()

    def _head_entry(value: str) -> None:
        head.append(value)
        if len(head) == 1 and _BOOL.get(value.lower()) is None:
            raise MalformedBody(f"smspartner XML success is not a boolean: {value!r}")
        if len(head) == len(_HEAD):
            # An error answer stops here: the rest of the body does not matter.
            _check_answer(head[0], head[1], head[2])

    def _recipient() -> None:
        if len(fields) != _FIELDS:  # this recipient's fault only
            reports.append(f"has {len(fields)} fields, expected {_FIELDS}")
        else:
            phone, status, stop, date = fields
            reports.append((phone, status, stop, date))
        fields.clear()

    parser = _parser()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise MalformedBody(f"smspartner invalid XML: {exc}") from None
    except (LookupError, ValueError, UnicodeError) as exc:  # declared encodings expat can't use
        raise MalformedBody(f"smspartner invalid XML: {exc}") from None
    if not head:
        raise MalformedBody("smspartner XML <result> has no entries")
    _check_answer(head[0], head[1] if len(head) > 1 else None, head[2] if len(head) > 2 else "")
    if len(head) < len(_HEAD):
        raise MalformedBody(
            f"smspartner XML has {len(head)} entries; expected success, code, message_id"
        )
    return key_part(head[2], "message_id"), reports


def _check_answer(success: NumberValue | None, code: NumberValue | None, message: object) -> None:
    """ProviderError for an error answer: `success` false, or any `code` other than 200."""
    ok = boolean(success, "success")
    number = integer(code, "code")
    if ok is False or (number is not None and number != 200):
        shown = code if number is None else number
        raise ProviderError(f"smspartner error {shown}: {str(message or '')[:200]}")


# -- decode -------------------------------------------------------------------------------------


def _json_reports(body: bytes) -> tuple[int | float | str | None, list[SmsPartnerReport]]:
    resp = decode_json(_DECODER, body, "smspartner bulk-status")
    _check_answer(resp.success, resp.code, resp.message)
    top_id = resp.message_id if resp.message_id is not None else resp.messageId
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
    return by_report(_decode_json, body, endpoint, ctx, (("StatutResponse_List",),))


def _decode_xml(body: bytes, ctx: RecordContext, zone: str) -> list[ReceiptEvent]:
    message_id, rows = _xml_reports(body)

    def build(index: int, row: XmlRow) -> ReceiptEvent:
        if isinstance(row, str):
            raise MalformedBody(f"smspartner XML recipient {index} {row}")
        phone, status, stop, date = row
        return _event(ctx, index, message_id, phone, status, stop, date, zone)

    return each_report(rows, build)


def _decode_json(body: bytes, _endpoint: str, ctx: RecordContext) -> list[ReceiptEvent]:
    zone = ctx.tz or DEFAULT_TZ
    top_id, reports = _json_reports(body)
    events = []
    for index, r in enumerate(reports):
        mid = r.messageId if r.messageId is not None else r.message_id
        mid = mid if mid is not None else top_id
        # key_part's common case inline (a call costs more than its checks); the rule otherwise.
        message_id = (
            t
            if type(mid) is str and 0 < len(t := mid.strip()) <= 64
            else key_part(mid, "message_id")
        )
        phone = r.phoneNumber if r.phoneNumber is not None else r.number
        status = r.status if r.status is not None else r.statut
        if status is None:
            raise MalformedBody(f"smspartner report {index} lacks status")
        stop_sms = r.stopSMS if r.stopSMS is not None else r.stopSms
        events.append(_event(ctx, index, message_id, phone, status, stop_sms, r.date, zone))
    return events


def _event(
    ctx: RecordContext,
    index: int,
    message_id: str,
    phone: str | None,
    raw_status: str,
    stop_sms: NumberValue | None,
    date: TimeValue | None,
    zone: str,
) -> ReceiptEvent:
    to = recipient(
        t
        if type(phone) is str and 0 < len(t := phone.strip()) <= 64
        else key_part(phone, "phoneNumber"),
        None,
        national_fr,
    )
    occurred_at, occurred_raw, time_zone = parse_time(date, zone, PROVIDER)
    return make_event(
        ctx,
        PROVIDER,  # provider
        "poll",  # channel
        _ENDPOINT,  # endpoint
        index,
        None,  # account
        f"{message_id}|{to}",  # message_key
        None,  # message_id
        message_id,  # batch_id
        None,  # client_ref
        to,  # recipient
        phone or "",  # recipient_raw
        _STATUS.get(raw_status) or map_status(PROVIDER, _STATUS, raw_status),  # status
        raw_status,  # provider_status
        None,  # provider_code
        None,  # provider_message
        None,  # segments
        None,  # segments_ok
        # The common shape inline (a call costs more than the check); the rule otherwise.
        stop_sms if type(stop_sms) is bool else boolean(stop_sms, "stopSMS"),  # opt_out
        occurred_at,
        occurred_raw,  # occurred_at_raw
        None,  # sent_at
        time_zone,
    )
