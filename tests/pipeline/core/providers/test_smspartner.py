"""SMS Partner `bulk-status`: JSON and positional XML, errors, safety, properties."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

import msgspec
import provider_cases as cases
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutations import mutated

from pipeline.core.normalise import UNMAPPED_STATUSES, RecordContext
from pipeline.core.providers import smspartner
from pipeline.errors import MalformedBody, PartialBody, ProviderError, UnknownFormat, UnsafeXml
from schemas import ReceiptEvent


def ctx(**kw: Any) -> RecordContext:
    return RecordContext(topic="t", partition=3, offset=42, timestamp_ms=1_700_000_000_000, **kw)


def decode(body: bytes, endpoint: str = "bulk-status", **kw: Any) -> list[ReceiptEvent]:
    return smspartner.decode(body, endpoint, ctx(**kw))


def one(body: bytes, **kw: Any) -> ReceiptEvent:
    return cases.decode_one(smspartner, body, "bulk-status", ctx(**kw))


def json_body(reports: list[dict[str, Any]], message_id: Any = "111", **top: Any) -> bytes:
    return msgspec.json.encode(
        {"success": True, "code": 200, "message_id": message_id, "StatutResponse_List": reports}
        | top
    )


def report(
    phone: str = "+33612345671",
    status: str = "Delivered",
    stop: Any = False,
    date: Any = "1517989111",
) -> dict[str, Any]:
    return {"phoneNumber": phone, "status": status, "stopSMS": stop, "date": date}


def xml_body(message_id: str, rows: list[tuple[str, str, str, str]], wrapped: bool = True) -> bytes:
    recipients = "".join(
        "<entry>" + "".join(f"<entry><![CDATA[{v}]]></entry>" for v in row) + "</entry>"
        for row in rows
    )
    if wrapped:
        recipients = f"<entry>{recipients}</entry>"
    head = f"<entry>true</entry><entry>200</entry><entry><![CDATA[{message_id}]]></entry>"
    return f"<?xml version='1.0' encoding='UTF-8'?><result>{head}{recipients}</result>".encode()


# -- the seed's examples ------------------------------------------------------------------------
# Cleaned: the seed's phone numbers are placeholders (`+336XXXXXXX1`), replaced by real-looking
# ones, and its lists end in a literal `...` (elided items), removed so the bodies are complete.

SEED_JSON = b"""{ "success": true, "code": 200, "message_id": "111", "StatutResponse_List": [
 { "phoneNumber": "+33612345671", "status": "Delivered", "stopSMS": false, "date": "1517989111" },
 { "phoneNumber": "+33612345672", "status": "Delivered", "stopSMS": false, "date": "1517989101" }
 ] }"""

SEED_XML = b"""<?xml version='1.0' encoding='UTF-8'?> <result> <entry>true</entry>
<entry>200</entry> <entry> <![CDATA[11]]> </entry> <entry> <entry>
<entry> <![CDATA[+33612345671]]> </entry>
<entry> <![CDATA[Delivered]]> </entry> <entry>false</entry> <entry> <![CDATA[1517989111]]>
</entry> </entry> <entry> <entry> <![CDATA[+33612345672]]> </entry> <entry>
<![CDATA[Delivered]]> </entry> <entry>false</entry> <entry> <![CDATA[1517989086]]> </entry>
</entry> </entry> </result>"""

SEED_JSON_ERROR = b"""{ "success": false, "code": 10, "message": "Cl\xc3\xa9 API incorrecte" }"""
SEED_XML_ERROR = b"""<?xml version='1.0' encoding='UTF-8'?> <result> <entry>false</entry>
<entry>10</entry> <entry>Cl\xc3\xa9 API incorrecte</entry> </result>"""


def test_seed_json() -> None:
    events = decode(SEED_JSON)
    assert [(e.source.index, e.recipient, e.occurred_at) for e in events] == [
        (0, "+33612345671", "2018-02-07T07:38:31Z"),
        (1, "+33612345672", "2018-02-07T07:38:21Z"),
    ]
    e = events[0]
    assert e.provider == "smspartner"
    assert e.channel == "poll"
    assert e.endpoint == "smspartner.bulk-status"
    assert e.account is None
    assert e.message_key == "111|+33612345671"
    assert e.message_id is None
    assert e.batch_id == "111"
    assert e.client_ref is None
    assert e.recipient_raw == "+33612345671"
    assert (e.status, e.finality, e.provider_status) == ("DELIVERED", "final", "Delivered")
    assert (e.provider_code, e.provider_message) == (None, None)
    assert (e.segments, e.segments_ok, e.sent_at) == (None, None, None)
    assert e.opt_out is False
    assert (e.occurred_at_raw, e.time_zone) == ("1517989111", None)
    assert e.observed_at == "2023-11-14T22:13:20Z"
    assert (e.source.topic, e.source.partition, e.source.offset) == ("t", 3, 42)


def test_seed_xml() -> None:
    events = decode(SEED_XML)
    assert [
        (e.source.index, e.message_key, e.batch_id, e.recipient, e.status, e.opt_out, e.occurred_at)
        for e in events
    ] == [
        (0, "11|+33612345671", "11", "+33612345671", "DELIVERED", False, "2018-02-07T07:38:31Z"),
        (1, "11|+33612345672", "11", "+33612345672", "DELIVERED", False, "2018-02-07T07:38:06Z"),
    ]
    assert events[0].occurred_at_raw == "1517989111"
    assert events[0].time_zone is None


def test_seed_json_and_xml_agree() -> None:
    as_json = json_body([report("+33612345671", "Waiting", True, "1517989111")], message_id="11")
    as_xml = xml_body("11", [("+33612345671", "Waiting", "true", "1517989111")])
    assert decode(as_json) == decode(as_xml)


def test_seed_placeholder_phone_is_kept_trimmed() -> None:
    e = one(json_body([report(" +336XXXXXXX1 ")]))
    assert (e.recipient, e.recipient_raw) == ("+336XXXXXXX1", " +336XXXXXXX1 ")


@pytest.mark.parametrize("body", [SEED_JSON_ERROR, SEED_XML_ERROR], ids=["json", "xml"])
def test_seed_errors(body: bytes) -> None:
    with pytest.raises(ProviderError, match="10: Clé API incorrecte"):
        decode(body)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (1, "La clé API est requise"),
        (3, "L'ID du message est requis"),
        (4, "Message introuvable"),
        (10, "Clé API incorrecte"),
    ],
)
def test_error_codes(code: int, message: str) -> None:
    body = msgspec.json.encode({"success": False, "code": code, "message": message})
    with pytest.raises(ProviderError, match=f"smspartner error {code}: {message}"):
        decode(body)
    xml = (
        f"<result><entry>false</entry><entry>{code}</entry>"
        f"<entry>{escape(message)}</entry></result>"
    ).encode()
    with pytest.raises(ProviderError, match=f"smspartner error {code}: {message}"):
        decode(xml)


# -- mapping tables -----------------------------------------------------------------------------


# The contract's SMS Partner `status` rule, case by case.
STATUS_ROWS = [
    ("Delivered", "DELIVERED", "final"),
    ("Not delivered", "UNDELIVERED", "final"),
    ("Waiting", "SENT", "intermediate"),
]


def test_every_status_of_the_table_has_a_case() -> None:
    """A row added to the product's table must come with a case from the documents above."""
    assert set(smspartner._STATUS) <= {raw for raw, _, _ in STATUS_ROWS}


@pytest.mark.parametrize(("raw", "status", "finality"), STATUS_ROWS)
@pytest.mark.parametrize("form", ["json", "xml"])
def test_status_table(raw: str, status: str, finality: str, form: str) -> None:
    if form == "json":
        body = json_body([report(status=raw)])
    else:
        body = xml_body("7", [("+33612345671", raw, "false", "1517989111")])
    e = one(body)
    assert (e.status, e.finality, e.provider_status) == (status, finality, raw)


def test_unmapped_status_is_unknown_and_counted() -> None:
    before = UNMAPPED_STATUSES["smspartner"]
    e = one(json_body([report(status="Envoyé")]))
    assert (e.status, e.finality, e.provider_status) == ("UNKNOWN", "soft_final", "Envoyé")
    assert UNMAPPED_STATUSES["smspartner"] == before + 1


@pytest.mark.parametrize(
    ("raw", "recipient"),
    [
        ("+33612345678", "+33612345678"),  # already E.164
        ("+447700900123", "+447700900123"),
        ("0612345678", "+33612345678"),  # French national 0X...
        ("0145678901", "+33145678901"),
        ("06 12 34 56 78", "+33612345678"),  # separators stripped before deciding
        ("06-12-34-56-78", "+33612345678"),
        ("(06) 12 34 56 78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        (" 0612345678 ", "+33612345678"),
        ("36180", "36180"),  # short code: trimmed raw
        (" 36180 ", "36180"),
        ("612345678", "612345678"),  # 9 digits: unknown national number
        ("061234567890", "061234567890"),  # 12 digits: not a French national number
        ("Info SMS", "Info SMS"),
    ],
)
def test_phone_rules(raw: str, recipient: str) -> None:
    e = one(json_body([report(phone=raw)], message_id="900"))
    assert (e.recipient, e.recipient_raw, e.message_key) == (recipient, raw, f"900|{recipient}")


@pytest.mark.parametrize(
    ("date", "tz", "occurred_at", "raw", "zone"),
    [
        ("1517989111", None, "2018-02-07T07:38:31Z", "1517989111", None),  # epoch string: UTC
        (1517989111, None, "2018-02-07T07:38:31Z", "1517989111", None),  # epoch int
        ("0", None, None, "0", None),  # a placeholder before 2000: no time
        (
            "2018-02-07 08:38:31",
            None,
            "2018-02-07T07:38:31Z",
            "2018-02-07 08:38:31",
            "Europe/Paris",
        ),
        (
            "2018-07-07 08:38:31",
            None,
            "2018-07-07T06:38:31Z",
            "2018-07-07 08:38:31",
            "Europe/Paris",
        ),
        (
            "2018-02-07 08:38:31",
            "Asia/Tokyo",
            "2018-02-06T23:38:31Z",
            "2018-02-07 08:38:31",
            "Asia/Tokyo",
        ),
        ("1517989111", "Asia/Tokyo", "2018-02-07T07:38:31Z", "1517989111", None),  # tz irrelevant
        (None, None, None, None, None),
        ("", None, None, None, None),
    ],
)
def test_time_rules(
    date: Any, tz: str | None, occurred_at: str | None, raw: str | None, zone: str | None
) -> None:
    e = one(json_body([report(date=date)]), tz=tz)
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone) == (occurred_at, raw, zone)


def test_xml_local_time() -> None:
    e = one(xml_body("5", [("0612345678", "Delivered", "true", "2018-07-07 08:38:31")]))
    assert (e.occurred_at, e.time_zone, e.opt_out) == ("2018-07-07T06:38:31Z", "Europe/Paris", True)


@pytest.mark.parametrize(("stop", "opt_out"), [(True, True), (False, False), (None, None)])
def test_opt_out(stop: bool | None, opt_out: bool | None) -> None:
    assert one(json_body([report(stop=stop)])).opt_out is opt_out


@pytest.mark.parametrize(
    ("text", "opt_out"), [("true", True), ("false", False), ("True", True), ("1", True), ("", None)]
)
def test_opt_out_xml(text: str, opt_out: bool | None) -> None:
    e = one(xml_body("5", [("0612345678", "Delivered", text, "1517989111")]))
    assert e.opt_out is opt_out


@pytest.mark.parametrize(
    ("message_id", "text"),
    [
        (300, "300"),
        (2**63 - 1, "9223372036854775807"),
        (2**64 + 1, "18446744073709551617"),  # beyond 64 bits: still exact
        (10**30, "1000000000000000000000000000000"),
        ("abc-300", "abc-300"),
    ],
)
def test_message_id_exact(message_id: Any, text: str) -> None:
    e = one(json_body([report()], message_id=message_id))
    assert (e.batch_id, e.message_key, e.message_id) == (text, f"{text}|+33612345671", None)


def test_single_message_spellings_at_top_level() -> None:
    body = b"""{"success":true,"code":200,"number":"0612345678","messageId":300,
        "statut":"Not delivered","stopSms":true,"date":"2018-02-07 08:38:31","cost":0.045}"""
    e = one(body)
    assert e.message_key == "300|+33612345678"
    assert (e.batch_id, e.recipient_raw, e.status, e.provider_status) == (
        "300",
        "0612345678",
        "UNDELIVERED",
        "Not delivered",
    )
    assert (e.opt_out, e.occurred_at, e.time_zone) == (True, "2018-02-07T07:38:31Z", "Europe/Paris")


def test_single_message_spellings_at_report_level() -> None:
    body = json_body(
        [{"number": "+33612345678", "statut": "Waiting", "stopSms": False, "messageId": 42}],
        message_id=None,
    )
    e = one(body)
    assert (e.message_key, e.batch_id, e.status, e.opt_out) == (
        "42|+33612345678",
        "42",
        "SENT",
        False,
    )


def test_report_message_id_wins_over_top() -> None:
    e = one(json_body([report() | {"messageId": "9"}], message_id="1"))
    assert e.batch_id == "9"


def test_account_from_header_only() -> None:
    assert one(json_body([report()])).account is None
    assert one(json_body([report()]), account="acme").account == "acme"


def test_unknown_fields_ignored_and_empty_lists() -> None:
    body = json_body([report() | {"cost": 0.04, "extra": {"a": [1]}}], extra=[1, {"b": None}])
    assert len(decode(body)) == 1
    assert decode(json_body([])) == []
    assert decode(b'{"success":true,"code":200,"message_id":"1","StatutResponse_List":null}') == []
    assert decode(xml_body("1", [])) == []
    assert decode(xml_body("1", [], wrapped=False)) == []


def test_flat_xml_recipients() -> None:
    rows = [("+33612345671", "Delivered", "false", "1"), ("0612345672", "Waiting", "true", "2")]
    assert decode(xml_body("8", rows, wrapped=False)) == decode(xml_body("8", rows))


@pytest.mark.parametrize(
    "endpoint", ["bulk-status", "poll", "bulk_status", "bulkStatus", "message-status"]
)
def test_endpoint_aliases(endpoint: str) -> None:
    assert decode(SEED_JSON, endpoint)[0].endpoint == "smspartner.bulk-status"


def test_unknown_endpoint() -> None:
    with pytest.raises(UnknownFormat):
        decode(SEED_JSON, "push")


def test_success_without_reports_is_unknown_format() -> None:
    with pytest.raises(UnknownFormat, match="StatutResponse_List"):
        decode(b'{"success":true,"code":200,"message_id":"1","nb_sms":2,"cost":0.09}')


# -- sniff --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        SEED_JSON,
        SEED_XML,
        SEED_JSON_ERROR,
        SEED_XML_ERROR,
        b"\xef\xbb\xbf  <result/>",
        b'{"success":true,"code":200,"number":"0612345678","statut":"Waiting","messageId":1}',
        b'<!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>',  # hostile XML is ours too
    ],
)
def test_sniff_recognises(body: bytes) -> None:
    assert smspartner.sniff(body) == "bulk-status"


@pytest.mark.parametrize("body", cases.bodies_of_other_providers("smspartner"))
def test_sniff_ignores_other_providers(body: bytes) -> None:
    assert smspartner.sniff(body) is None


@pytest.mark.parametrize("body", [b"", b"   ", b"[]", b'{"code":1}', b"sms_status=x", b"\xff"])
def test_sniff_ignores_other_bodies(body: bytes) -> None:
    assert smspartner.sniff(body) is None


# -- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"success":true,"a":' + b"[" * 100_000,
        b'{"success":true,"code":200,"message_id":"1","StatutResponse_List":[{"phoneNumber":"\xff"}]}',
        b'{"success":"yes","code":200}',  # wrong type
        b'{"success":true,"code":200,"message_id":"1","StatutResponse_List":{}}',
        b'{"success":true,"code":200,"message_id":"1","StatutResponse_List":[1]}',
        b'{"success":true,"code":200,"message_id":"1","StatutResponse_List":[{"status":"Delivered"}]}',
        b'{"success":true,"code":200,"StatutResponse_List":[{"phoneNumber":"1","status":"Waiting"}]}',
        b'{"success":true,"code":200,"message_id":"","StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting"}]}',
        b'{"success":true,"code":200,"message_id":"1","StatutResponse_List":[{"phoneNumber":" ",'
        b'"status":"Waiting"}]}',
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":1e400}]}',
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","stopSMS":"maybe"}]}',
        b'{"success":true',  # truncated
        b"\xef\xbb\xbf{}",
        b"null",
    ],
)
def test_hostile_json_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode(body)


def test_bad_tz_header_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="time zone"):
        decode(json_body([report(date="2018-02-07 08:38:31")]), tz="Mars/Olympus")


# -- XML safety ---------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE result [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<result><entry>true</entry><entry>200</entry><entry>&lol9;</entry></result>"""

QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE result [<!ENTITY a "'
    + b"x" * 100_000
    + b'">]><result><entry>true</entry><entry>200</entry><entry>'
    + b"&a;" * 20_000
    + b"</entry></result>"
)

UNSAFE = {
    "billion_laughs": BILLION_LAUGHS,
    "quadratic_blowup": QUADRATIC,
    "external_file": b'<?xml version="1.0"?><!DOCTYPE result [<!ENTITY x SYSTEM '
    b'"file:///etc/passwd">]><result><entry>true</entry><entry>200</entry><entry>&x;</entry>'
    b"</result>",
    "external_http": b'<?xml version="1.0"?><!DOCTYPE result [<!ENTITY x SYSTEM '
    b'"http://127.0.0.1:9/evil">]><result><entry>&x;</entry></result>',
    "external_public": b'<!DOCTYPE result [<!ENTITY x PUBLIC "-//x//EN" "http://example.com/x">]>'
    b"<result>&x;</result>",
    "external_dtd": b'<?xml version="1.0"?><!DOCTYPE result SYSTEM "http://127.0.0.1:9/x.dtd">'
    b"<result><entry>true</entry></result>",
    "parameter_entities": b'<?xml version="1.0"?><!DOCTYPE result [<!ENTITY % p SYSTEM '
    b'"file:///etc/passwd"> %p; <!ENTITY % q "<!ENTITY r \'x\'>"> %q;]><result>&r;</result>',
    "doctype_without_entities": b"<?xml version='1.0'?><!DOCTYPE result><result>"
    b"<entry>true</entry><entry>200</entry><entry>1</entry></result>",
    "doctype_internal_subset_only": b"<!DOCTYPE result [<!ELEMENT result ANY>]><result/>",
    "unparsed_entity": b'<!DOCTYPE result [<!NOTATION n SYSTEM "x"><!ENTITY e SYSTEM "y" NDATA n>'
    b"]><result/>",
}


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_unsafe_xml_refused_fast(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*_a: object, **_k: object) -> None:
        raise AssertionError("the XML parser tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    body = UNSAFE[name]
    assert smspartner.sniff(body) == "bulk-status"
    start = time.perf_counter()
    with pytest.raises(UnsafeXml):
        decode(body)
    assert time.perf_counter() - start < 0.05


def test_undeclared_entity_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="undefined entity"):
        decode(b"<result><entry>&xxe;</entry></result>")


def test_xml_error_without_message() -> None:
    with pytest.raises(ProviderError, match=r"smspartner error 3: $"):
        decode(b"<result><entry>false</entry><entry>3</entry></result>")


def test_predefined_and_character_entities_are_fine() -> None:
    body = xml_body("1", [("0612345678", "Not delivered", "false", "1")])
    e = one(body.replace(b"<![CDATA[Not delivered]]>", b"Not&#32;delivered"))
    assert e.status == "UNDELIVERED"
    body = b"<result><entry>false</entry><entry>4</entry><entry>a &amp; b &lt;c&gt;</entry>"
    body += b"</result>"
    with pytest.raises(ProviderError, match="a & b <c>"):
        decode(body)


@pytest.mark.parametrize(
    "body",
    [
        b"<result>",  # unclosed
        b"<result><entry>true</entry></resul>",
        b"<result></result><result></result>",
        b"<",
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry></result>\xff",
        b"<?xml version='1.0' encoding='bogus-enc'?><result/>",
        b"<?xml version='1.0' encoding='UTF-8'?><result><entry>caf\xe9</entry></result>",
        b"<result><entry>" + b"<entry>" * 100_000,  # deep nesting: refused at depth 5
    ],
)
def test_malformed_xml(body: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(MalformedBody):
        decode(body)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    "body",
    [
        b"<result/>",
        b"<result><entry>true</entry><entry>200</entry></result>",  # missing message_id
        b"<other><entry>true</entry><entry>200</entry><entry>1</entry></other>",  # wrong root
        b"<result><entry>yes</entry><entry>200</entry><entry>1</entry></result>",  # not a bool
        b"<result><entry>true</entry><entry>200</entry><entry> </entry></result>",  # empty id
        b"<result><item>true</item><entry>200</entry><entry>1</entry></result>",  # wrong tag
        b"<result><entry><entry>x</entry></entry><entry>200</entry><entry>1</entry></result>",
        # a recipient with 3 fields, with 5 fields, with a nested field:
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry><entry>"
        b"<entry>+33612345678</entry><entry>Delivered</entry><entry>false</entry></entry>"
        b"</entry></result>",
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry>"
        b"<entry>+33612345678</entry><entry>Delivered</entry><entry>false</entry><entry>1</entry>"
        b"<entry>x</entry></entry></result>",
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry><entry>"
        b"<entry><entry>+33612345678</entry></entry><entry>Delivered</entry><entry>false</entry>"
        b"<entry>1</entry></entry></entry></result>",
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry>text</entry></result>",
        # no phone; stopSMS not a boolean:
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry><entry></entry>"
        b"<entry>Delivered</entry><entry>false</entry><entry>1</entry></entry></result>",
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry><entry>1</entry>"
        b"<entry>Delivered</entry><entry>maybe</entry><entry>1</entry></entry></result>",
    ],
)
def test_wrong_xml_structure_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode(body)


# -- properties ---------------------------------------------------------------------------------

# The property tests need only the data: the product's table, checked case by case above.
STATUS = dict(smspartner._STATUS)
FOLDED_STATUS = {cases.folded(k): v for k, v in STATUS.items()}
KNOWN_KEYS = {
    "success", "code", "message", "message_id", "messageId", "StatutResponse_List", "phoneNumber",
    "number", "status", "statut", "stopSMS", "stopSms", "date",
}  # fmt: skip

xml_char = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff\u2028\u2029\x85"
)
xml_text = st.text(xml_char, min_size=1, max_size=12).filter(lambda s: s == s.strip() and s)

# (raw phone, expected recipient)
phones = st.one_of(
    st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True).map(lambda p: (p, p)),
    st.from_regex(r"0[1-9][0-9]{8}", fullmatch=True).map(lambda p: (p, "+33" + p[1:])),
    st.from_regex(r"[1-9][0-9]{2,5}", fullmatch=True).map(lambda p: (p, p)),
    # contains a letter, so it is never a number: trimmed raw
    xml_text.filter(lambda s: any(c.isalpha() for c in s)).map(lambda p: (p, p)),
)
statuses = st.one_of(st.sampled_from(sorted(STATUS)), xml_text)


dates = cases.epoch_or_local_times("Europe/Paris")
ids = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**64, 2**90),
    st.text(min_size=1).filter(lambda t: 0 < len(t.strip().encode()) <= 256),
)
unknown_fields = cases.extras(KNOWN_KEYS)
stops = st.sampled_from([True, False, None])
reports = st.tuples(phones, statuses, stops, dates, st.booleans(), unknown_fields)


def _expected(message_id: str, rows: list[Any]) -> list[tuple[Any, ...]]:
    out = []
    for index, row in enumerate(rows):
        (raw, recipient), status, stop, (_, date_raw, occurred, zone), *_ = row
        out.append(
            (index, f"{message_id}|{recipient}", message_id, raw, recipient,
             FOLDED_STATUS.get(cases.folded(status), "UNKNOWN"), status, stop, occurred,
             date_raw, zone)
        )  # fmt: skip
    return out


def _actual(events: list[ReceiptEvent]) -> list[tuple[Any, ...]]:
    return [
        (e.source.index, e.message_key, e.batch_id, e.recipient_raw, e.recipient, e.status,
         e.provider_status, e.opt_out, e.occurred_at, e.occurred_at_raw, e.time_zone)
        for e in events
    ]  # fmt: skip


@cases.PROPERTY
@given(message_id=ids, rows=st.lists(reports, max_size=8), top_extra=unknown_fields)
def test_property_json(message_id: Any, rows: list[Any], top_extra: dict[str, Any]) -> None:
    items = []
    for (raw, _), status, stop, (date, *_), single_spelling, extra in rows:
        if single_spelling:
            item = {"number": raw, "statut": status, "stopSms": stop, "date": date}
        else:
            item = {"phoneNumber": raw, "status": status, "stopSMS": stop, "date": date}
        items.append(extra | item)
    body = msgspec.json.encode(
        top_extra
        | {"success": True, "code": 200, "message_id": message_id, "StatutResponse_List": items}
    )
    text_id = cases.key_text(message_id)
    assert smspartner.sniff(body) == "bulk-status"
    assert _actual(decode(body)) == _expected(text_id, rows)


@cases.PROPERTY
@given(
    message_id=xml_text, rows=st.lists(reports, max_size=8), wrapped=st.booleans(), data=st.data()
)
def test_property_xml(message_id: str, rows: list[Any], wrapped: bool, data: st.DataObject) -> None:
    def field(value: str) -> str:
        pad = data.draw(st.sampled_from(["", " ", "\n  "]))
        if "]]>" not in value and data.draw(st.booleans()):
            return f"<entry>{pad}<![CDATA[{value}]]>{pad}</entry>"
        return f"<entry>{pad}{escape(value)}{pad}</entry>"

    recipients = "".join(
        "<entry>"
        + field(raw) + field(status)
        + field("" if stop is None else str(stop).lower())
        + field("" if date is None else str(date))
        + "</entry>"
        for (raw, _), status, stop, (date, *_), *_ in rows
    )  # fmt: skip
    if wrapped:
        recipients = f"<entry>{recipients}</entry>"
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?>\n<result><entry>true</entry><entry>200</entry>"
        f"{field(message_id)}{recipients}</result>"
    ).encode()
    assert smspartner.sniff(body) == "bulk-status"
    assert _actual(decode(body)) == _expected(message_id, rows)


VALID_BODIES = [SEED_JSON, SEED_XML, SEED_JSON_ERROR, SEED_XML_ERROR]


@settings(max_examples=400, deadline=timedelta(seconds=1))
@given(body=st.binary(max_size=512) | st.binary(max_size=512).map(lambda b: b"<" + b))
def test_arbitrary_bytes_only_raise_decode_errors(body: bytes) -> None:
    cases.survives(smspartner, body, ["bulk-status"], ctx())


@settings(max_examples=600, deadline=timedelta(seconds=1))
@given(body=mutated(st.sampled_from(VALID_BODIES)))
def test_mutated_bodies_only_raise_decode_errors(body: bytes) -> None:
    cases.survives(smspartner, body, ["bulk-status"], ctx())


@pytest.mark.parametrize(
    "body",
    [
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":1000000000000000000000000000000}]}',
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":"1000000000000000000000000000000"}]}',
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":-5}]}',
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":"\xc2\xb2"}]}',  # '²': isdigit() but not a number
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":"yesterday"}]}',
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":"2018-02-30 10:00:00"}]}',
        b'{"success":true,"code":200,"message_id":1,"StatutResponse_List":[{"phoneNumber":"1",'
        b'"status":"Waiting","date":"' + b"9" * 5000 + b'"}]}',
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry><entry>1</entry>"
        b"<entry>Delivered</entry><entry>false</entry><entry>" + b"9" * 40 + b"</entry></entry>"
        b"</result>",  # absurd date
    ],
)
def test_times_bad_time_costs_no_receipt(body: bytes) -> None:
    (e,) = decode(body)
    assert e.occurred_at is None and e.occurred_at_raw is not None and e.time_zone is None


def test_xml_wrapper_mixing_recipients_and_fields_is_partial() -> None:
    body = (
        b"<result><entry>true</entry><entry>200</entry><entry>1</entry><entry><entry>"
        b"<entry>+33612345678</entry><entry>Delivered</entry><entry>false</entry><entry>1</entry>"
        b"</entry><entry>x</entry></entry></result>"
    )
    with pytest.raises(PartialBody) as caught:
        decode(body)
    assert caught.value.reports == (1,) and len(caught.value.events) == 1
