"""Tencent Cloud SMS: PullSmsSendStatus poll, status callbacks, SendSms results."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import msgspec
import provider_cases as cases
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutations import mutated

from pipeline.core.normalise import UNMAPPED_STATUSES, RecordContext, national_cn
from pipeline.core.normalise import recipient as to_e164
from pipeline.core.providers import tencent
from pipeline.errors import MalformedBody, NotReceipts, ProviderError, UnknownFormat
from schemas import ReceiptEvent


def ctx(**kw: Any) -> RecordContext:
    return RecordContext(topic="t", partition=1, offset=9, timestamp_ms=1_700_000_000_000, **kw)


def decode(body: bytes, endpoint: str = "PullSmsSendStatus", **kw: Any) -> list[ReceiptEvent]:
    return tencent.decode(body, endpoint, ctx(**kw))


def one(body: bytes, endpoint: str = "PullSmsSendStatus", **kw: Any) -> ReceiptEvent:
    return cases.decode_one(tencent, body, endpoint, ctx(**kw))


def poll_body(*reports: dict[str, Any], request_id: str = "r-1") -> bytes:
    return msgspec.json.encode(
        {"Response": {"PullSmsSendStatusSet": list(reports), "RequestId": request_id}}
    )


def poll_report(**kw: Any) -> dict[str, Any]:
    base = {
        "UserReceiveTime": 1576477156,
        "CountryCode": "86",
        "SubscriberNumber": "13711112222",
        "PhoneNumber": "+8613711112222",
        "SerialNo": "5000:104571066915705365784949619",
        "ReportStatus": "SUCCESS",
        "Description": "DELIVRD",
        "SessionContext": "order-1",
    }
    return base | kw


def callback(**kw: Any) -> dict[str, Any]:
    base = {
        "user_receive_time": "2015-10-17 08:03:04",
        "nationcode": "86",
        "mobile": "13711112222",
        "report_status": "SUCCESS",
        "errmsg": "DELIVRD",
        "description": "用户短信送达成功",
        "sid": "2019:538884*********",
    }
    return base | kw


def callback_body(*items: dict[str, Any]) -> bytes:
    return msgspec.json.encode(list(items))


def send_body(*results: dict[str, Any], request_id: str = "a0aabda6-cf91-4f3e-a81f") -> bytes:
    return msgspec.json.encode(
        {"Response": {"SendStatusSet": list(results), "RequestId": request_id}}
    )


def send_result(**kw: Any) -> dict[str, Any]:
    base = {
        "SerialNo": "5000:104571066915705365784949619",
        "PhoneNumber": "+8618511122233",
        "Fee": 1,
        "SessionContext": "test",
        "Code": "Ok",
        "Message": "send success",
        "IsoCode": "CN",
    }
    return base | kw


# -- Tencent's documented formats ------------------------------------------------------------
# Tencent's API docs give the data types by field table only (no example bodies); these follow
# the tables, in the Tencent Cloud API 3.0 envelope `{"Response": {...,"RequestId"}}`. The callback
# example is Tencent's "SMS Sending Status Notification" sample, its placeholder mobile
# (`13xxxxxxxxx`) and sid (`xxxxxxx`) replaced by real-looking values.

SEED_POLL = b"""{"Response": {"PullSmsSendStatusSet": [
  {"UserReceiveTime": 1576477156, "CountryCode": "86", "SubscriberNumber": "13711112222",
   "PhoneNumber": "+8613711112222", "SerialNo": "5000:104571066915705365784949619",
   "ReportStatus": "SUCCESS", "Description": "DELIVRD", "SessionContext": ""}],
  "RequestId": "b8a3ef97-3d4b-4c3c-8a7e-c1f4b7e2a5d6"}}"""

SEED_SEND = b"""{"Response": {"SendStatusSet": [
  {"SerialNo": "5000:104571066915705365784949619", "PhoneNumber": "+8618511122233", "Fee": 1,
   "SessionContext": "test", "Code": "Ok", "Message": "send success", "IsoCode": "CN"}],
  "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}"""

SEED_CALLBACK = b"""[{"user_receive_time": "2015-10-17 08:03:04", "nationcode": "86",
  "mobile": "13711112222", "report_status": "SUCCESS", "errmsg": "DELIVRD",
  "description": "The SMS message is successfully delivered", "sid": "2019:538884158512345"}]"""

SEED_REPLY_POLL = b"""{"Response": {"PullSmsReplyStatusSet": [
  {"ExtendCode": "01", "CountryCode": "86", "PhoneNumber": "+8613711112222", "SignName": "Tencent",
   "ReplyContent": "hello", "ReplyTime": 1580804300, "SubscriberNumber": "13711112222"}],
  "RequestId": "r-2"}}"""

SEED_SEND_STATISTICS = b"""{"Response": {"SendStatusStatistics": {"FeeCount": 120,
  "RequestCount": 100, "RequestSuccessCount": 100}, "RequestId": "r-3"}}"""

SEED_CALLBACK_STATISTICS = b"""{"Response": {"CallbackStatusStatistics": {"CallbackCount": 100,
  "RequestSuccessCount": 100, "CallbackFailCount": 10, "CallbackSuccessCount": 90,
  "InternalErrorCount": 1, "InvalidNumberCount": 2, "ShutdownErrorCount": 3, "BlackListCount": 2,
  "FrequencyLimitCount": 2}, "RequestId": "r-4"}}"""

SEED_REPLY_CALLBACK = b"""{"extend": "", "mobile": "13711112222", "nationcode": "86",
  "sign": "Tencent", "text": "hello", "time": 1457336869}"""

SEED_REPLY_CALLBACK_ARRAY = b"""[{"extend": "01", "mobile": "13711112222", "nationcode": "86",
  "sign": "Tencent", "text": "hello", "reply_time": "2021-05-08 11:11:11"}]"""

SEED_ERROR = b"""{"Response": {"Error": {"Code": "AuthFailure.SignatureFailure",
  "Message": "The provided credentials could not be validated."}, "RequestId": "r-5"}}"""


def test_seed_poll() -> None:
    e = one(SEED_POLL)
    assert e.provider == "tencent"
    assert (e.channel, e.endpoint) == ("poll", "tencent.PullSmsSendStatus")
    assert e.account is None
    assert (e.message_key, e.message_id, e.batch_id) == (
        "5000:104571066915705365784949619",
        "5000:104571066915705365784949619",
        None,
    )
    assert e.client_ref is None  # empty SessionContext
    assert (e.recipient, e.recipient_raw) == ("+8613711112222", "+8613711112222")
    assert (e.status, e.finality, e.provider_status) == ("DELIVERED", "final", "SUCCESS")
    assert (e.provider_code, e.provider_message) == ("DELIVRD", None)
    assert (e.segments, e.segments_ok, e.opt_out, e.sent_at) == (None, None, None, None)
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone) == (
        "2019-12-16T06:19:16Z",
        "1576477156",
        None,
    )
    assert e.observed_at == "2023-11-14T22:13:20Z"
    assert (e.source.topic, e.source.partition, e.source.offset, e.source.index) == ("t", 1, 9, 0)


def test_seed_send() -> None:
    e = one(SEED_SEND, "SendSms")
    assert (e.channel, e.endpoint) == ("submit", "tencent.SendSms")
    assert (e.message_key, e.message_id) == ("5000:104571066915705365784949619",) * 2
    assert (e.client_ref, e.recipient, e.recipient_raw) == (
        "test",
        "+8618511122233",
        "+8618511122233",
    )
    assert (e.status, e.finality, e.provider_status, e.provider_code, e.provider_message) == (
        "PENDING",
        "intermediate",
        "Ok",
        None,  # a submit has no carrier code
        "send success",
    )
    assert (e.segments, e.occurred_at, e.occurred_at_raw, e.time_zone) == (1, None, None, None)


def test_seed_callback() -> None:
    e = one(SEED_CALLBACK, "callback")
    assert (e.channel, e.endpoint) == ("push", "tencent.callback")
    assert (e.message_key, e.message_id, e.client_ref) == (
        "2019:538884158512345",
        "2019:538884158512345",
        None,
    )
    assert (e.recipient, e.recipient_raw) == ("+8613711112222", "13711112222")
    assert (e.status, e.provider_status, e.provider_code, e.provider_message) == (
        "DELIVERED",
        "SUCCESS",
        "DELIVRD",
        "The SMS message is successfully delivered",
    )
    # Naive time in Asia/Shanghai (UTC+8).
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone) == (
        "2015-10-17T00:03:04Z",
        "2015-10-17 08:03:04",
        "Asia/Shanghai",
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (SEED_REPLY_POLL, "tencent.reply"),
        (SEED_REPLY_CALLBACK, "tencent.reply"),
        (SEED_REPLY_CALLBACK_ARRAY, "tencent.reply"),
        (SEED_SEND_STATISTICS, "tencent.statistics"),
        (SEED_CALLBACK_STATISTICS, "tencent.statistics"),
        (b'{"Response":{"PullSmsReplyStatusSet":[],"RequestId":"r"}}', "tencent.reply"),
    ],
)
def test_not_receipts(body: bytes, kind: str) -> None:
    endpoint = tencent.sniff(body)
    assert endpoint is not None
    with pytest.raises(NotReceipts) as info:
        decode(body, endpoint)
    assert info.value.kind == kind


def test_provider_error() -> None:
    with pytest.raises(ProviderError, match=r"AuthFailure\.SignatureFailure: The provided"):
        decode(SEED_ERROR)


@pytest.mark.parametrize(
    "inner",
    [
        b'"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":"SUCCESS","PhoneNumber":"+1"}],',
        b'"SendStatusSet":[],',
        b'"SendStatusStatistics":{},',
        b"",
    ],
)
def test_any_response_with_error_is_provider_error(inner: bytes) -> None:
    body = b'{"Response":{' + inner + b'"Error":{"Code":"LimitExceeded","Message":"slow down"}}}'
    with pytest.raises(ProviderError, match="tencent error LimitExceeded: slow down"):
        decode(body)


def test_unknown_response_names_its_keys() -> None:
    body = b'{"Response":{"PhoneNumberInfoSet":[],"RequestId":"r"}}'
    with pytest.raises(UnknownFormat, match="PhoneNumberInfoSet, RequestId"):
        decode(body)
    with pytest.raises(UnknownFormat, match="keys: foo"):
        decode(b'{"foo":1}', "callback")


# -- mapping tables -----------------------------------------------------------------------------

# The contract's Tencent status rule, case by case ("FAIL → by code: ..., anything else →
# UNDELIVERED"): these cases, not a copy of the product's table, are what it is checked against.
STATUS_ROWS = [
    ("SUCCESS", "DELIVRD", "DELIVERED"),
    ("SUCCESS", None, "DELIVERED"),
    ("FAIL", "EXPIRED", "EXPIRED"),
    ("FAIL", "REJECTD", "REJECTED"),
    ("FAIL", "DELETED", "DELETED"),
    ("FAIL", "SUBFAIL", "FAILED"),
    ("FAIL", "COMFAIL", "FAILED"),
    ("FAIL", "WTNFAIL", "FAILED"),
    ("FAIL", "MSBLACK", "UNDELIVERED"),
    ("FAIL", "DB:0103", "UNDELIVERED"),
    ("FAIL", "UNDELIV", "UNDELIVERED"),
    ("FAIL", None, "UNDELIVERED"),
    ("UNKNOWN", None, "UNKNOWN"),
    ("UNKNOWN", "EXPIRED", "UNKNOWN"),
]


@pytest.mark.parametrize(("raw", "code", "status"), STATUS_ROWS)
def test_status_table_poll(raw: str, code: str | None, status: str) -> None:
    e = one(poll_body(poll_report(ReportStatus=raw, Description=code)))
    assert (e.status, e.provider_status, e.provider_code, e.provider_message) == (
        status,
        raw,
        code,
        None,
    )


@pytest.mark.parametrize(("raw", "code", "status"), STATUS_ROWS)
def test_status_table_callback(raw: str, code: str | None, status: str) -> None:
    e = one(callback_body(callback(report_status=raw, errmsg=code or "")), "callback")
    assert (e.status, e.provider_status, e.provider_code) == (status, raw, code)


def test_every_fail_code_of_the_table_has_a_case() -> None:
    """A code added to the product's table must come with a case from the documents above."""
    cased = {code for raw, code, _ in STATUS_ROWS if raw == "FAIL"}
    assert set(tencent._FAIL_BY_CODE) <= cased
    assert set(tencent._STATUS) <= {raw for raw, _, _ in STATUS_ROWS}


def test_fail_with_prose_description_is_undelivered() -> None:
    e = one(poll_body(poll_report(ReportStatus="FAIL", Description="用户手机关机")))
    assert (e.status, e.provider_code, e.provider_message) == ("UNDELIVERED", None, "用户手机关机")


def test_unmapped_status_is_unknown_and_counted() -> None:
    before = UNMAPPED_STATUSES["tencent"]
    e = one(poll_body(poll_report(ReportStatus="PENDING?")))
    assert (e.status, e.finality, e.provider_status) == ("UNKNOWN", "soft_final", "PENDING?")
    assert UNMAPPED_STATUSES["tencent"] == before + 1


@pytest.mark.parametrize(
    ("description", "code", "message"),
    [
        ("DELIVRD", "DELIVRD", None),
        ("MSBLACK", "MSBLACK", None),
        ("DB:0103", "DB:0103", None),
        ("MK:0001", "MK:0001", None),
        ("MI-0024", "MI-0024", None),
        ("ERR_104", "ERR_104", None),
        ("0", "0", None),
        ("用户短信送达成功", None, "用户短信送达成功"),
        (
            "The SMS message is successfully delivered",
            None,
            "The SMS message is successfully delivered",
        ),
        ("Delivrd", None, "Delivrd"),  # not upper-case: a message
        ("DELIVRD\n", None, "DELIVRD\n"),
        ("", None, None),
        (None, None, None),
    ],
)
def test_description_code_or_message(
    description: str | None, code: str | None, message: str | None
) -> None:
    e = one(poll_body(poll_report(Description=description)))
    assert (e.provider_code, e.provider_message) == (code, message)


@pytest.mark.parametrize(
    ("errmsg", "description", "code", "message"),
    [
        ("DELIVRD", "用户短信送达成功", "DELIVRD", "用户短信送达成功"),
        ("", "", None, None),
        (None, None, None, None),
    ],
)
def test_callback_code_and_message(
    errmsg: str | None, description: str | None, code: str | None, message: str | None
) -> None:
    e = one(callback_body(callback(errmsg=errmsg, description=description)), "callback")
    assert (e.provider_code, e.provider_message) == (code, message)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Ok", "PENDING"),
        ("OK", "PENDING"),
        ("LimitExceeded.PhoneNumberDailyLimit", "FAILED"),
        ("InvalidParameterValue.IncorrectPhoneNumber", "FAILED"),
        ("FailedOperation.InsufficientBalanceInSmsPackage", "FAILED"),
        ("", "FAILED"),
    ],
)
def test_submit_table(code: str, status: str) -> None:
    e = one(send_body(send_result(Code=code, Message="m")), "SendSms")
    assert (e.status, e.provider_status, e.provider_code, e.provider_message) == (
        status,
        code,
        None,
        "m",
    )


def test_submit_failure_without_serial_is_keyed_by_request() -> None:
    body = send_body(
        send_result(SerialNo="", Code="LimitExceeded.PhoneNumberDailyLimit", Fee=0),
        send_result(SerialNo="", PhoneNumber="+447700900123", Code="LimitExceeded", Fee=0),
        request_id="req-9",
    )
    a, b = decode(body, "SendSms")
    assert (a.message_key, a.message_id, a.status, a.segments) == (
        "req-9|+8618511122233",
        None,
        "FAILED",
        0,
    )
    assert b.message_key == "req-9|+447700900123"


@pytest.mark.parametrize(
    ("phone", "country", "subscriber", "recipient", "raw"),
    [
        ("+8613711112222", "86", "13711112222", "+8613711112222", "+8613711112222"),
        ("+447700900123", "44", "7700900123", "+447700900123", "+447700900123"),
        ("8613711112222", "86", "13711112222", "+8613711112222", "13711112222"),  # no `+`
        ("13711112222", "86", "13711112222", "+8613711112222", "13711112222"),
        ("07700900123", "44", "07700900123", "+447700900123", "07700900123"),  # national 0
        ("", "86", "13711112222", "+8613711112222", "13711112222"),
        (None, "86", "13711112222", "+8613711112222", "13711112222"),
        ("10086", None, None, "10086", "10086"),  # short code: trimmed raw
        (" 10086 ", None, "", "10086", " 10086 "),
    ],
)
def test_poll_phone_rules(
    phone: str | None, country: str | None, subscriber: str | None, recipient: str, raw: str
) -> None:
    report = poll_report(PhoneNumber=phone, CountryCode=country, SubscriberNumber=subscriber)
    e = one(poll_body(report))
    assert (e.recipient, e.recipient_raw) == (recipient, raw)


@pytest.mark.parametrize(
    ("nationcode", "mobile", "recipient"),
    [
        ("86", "13711112222", "+8613711112222"),
        ("44", "07700900123", "+447700900123"),  # leading national 0 stripped
        ("+33", "0612345678", "+33612345678"),
        (852, "51234567", "+85251234567"),  # a numeric nationcode
        ("86", "+8613711112222", "+8613711112222"),  # already E.164
        ("86", "137 1111 2222", "+8613711112222"),
        (None, "13711112222", "+8613711112222"),  # no country code: a mainland mobile
        (None, "12025550123", "12025550123"),  # not Chinese: trimmed raw
        ("86", "short", "short"),
    ],
)
def test_callback_phone_rules(nationcode: Any, mobile: str, recipient: str) -> None:
    e = one(callback_body(callback(nationcode=nationcode, mobile=mobile)), "callback")
    assert (e.recipient, e.recipient_raw) == (recipient, mobile)


@pytest.mark.parametrize(
    ("value", "tz", "occurred_at", "raw", "zone"),
    [
        (
            "2015-10-17 08:03:04",
            None,
            "2015-10-17T00:03:04Z",
            "2015-10-17 08:03:04",
            "Asia/Shanghai",
        ),
        ("2015-10-17 08:03:04", "UTC", "2015-10-17T08:03:04Z", "2015-10-17 08:03:04", "UTC"),
        (
            "2015-10-17 08:03:04",
            "Europe/Paris",
            "2015-10-17T06:03:04Z",
            "2015-10-17 08:03:04",
            "Europe/Paris",
        ),
        (1445040184, None, "2015-10-17T00:03:04Z", "1445040184", None),  # epoch: UTC
        ("1445040184", "Europe/Paris", "2015-10-17T00:03:04Z", "1445040184", None),
        ("", None, None, None, None),
        (None, None, None, None, None),
    ],
)
def test_callback_time_rules(
    value: Any, tz: str | None, occurred_at: str | None, raw: str | None, zone: str | None
) -> None:
    e = one(callback_body(callback(user_receive_time=value)), "callback", tz=tz)
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone) == (occurred_at, raw, zone)


@pytest.mark.parametrize(
    ("value", "tz", "occurred_at", "raw", "zone"),
    [
        (1576477156, None, "2019-12-16T06:19:16Z", "1576477156", None),
        (1576477156, "Asia/Tokyo", "2019-12-16T06:19:16Z", "1576477156", None),
        ("1576477156", None, "2019-12-16T06:19:16Z", "1576477156", None),
        (
            "2019-12-16 14:19:16",
            None,
            "2019-12-16T06:19:16Z",
            "2019-12-16 14:19:16",
            "Asia/Shanghai",
        ),
        (None, None, None, None, None),
    ],
)
def test_poll_time_rules(
    value: Any, tz: str | None, occurred_at: str | None, raw: str | None, zone: str | None
) -> None:
    e = one(poll_body(poll_report(UserReceiveTime=value)), tz=tz)
    assert (e.occurred_at, e.occurred_at_raw, e.time_zone) == (occurred_at, raw, zone)


@pytest.mark.parametrize(("context", "client_ref"), [("", None), (None, None), ("ord-7", "ord-7")])
def test_client_ref(context: str | None, client_ref: str | None) -> None:
    assert one(poll_body(poll_report(SessionContext=context))).client_ref == client_ref
    assert one(send_body(send_result(SessionContext=context)), "SendSms").client_ref == client_ref


@pytest.mark.parametrize(
    ("serial", "text"),
    [
        (2**63 - 1, "9223372036854775807"),
        (2**64 + 1, "18446744073709551617"),
        ("2019:538884158512345", "2019:538884158512345"),
    ],
)
def test_ids_exact(serial: Any, text: str) -> None:
    assert one(poll_body(poll_report(SerialNo=serial))).message_key == text
    assert one(callback_body(callback(sid=serial)), "callback").message_id == text
    assert one(send_body(send_result(SerialNo=serial)), "SendSms").message_key == text


def test_account_from_header_only() -> None:
    assert one(SEED_POLL).account is None
    assert one(SEED_POLL, account="1400123456").account == "1400123456"


def test_empty_and_null_sets() -> None:
    assert decode(b'{"Response":{"PullSmsSendStatusSet":[],"RequestId":"r"}}') == []
    assert decode(b'{"Response":{"PullSmsSendStatusSet":null,"RequestId":"r"}}') == []
    assert decode(b'{"Response":{"SendStatusSet":null}}', "SendSms") == []
    assert decode(b"[]", "callback") == []


def test_single_callback_object_and_replies_in_a_status_batch() -> None:
    assert one(msgspec.json.encode(callback()), "callback").status == "DELIVERED"
    reply = {"mobile": "13711112222", "nationcode": "86", "sign": "s", "text": "hi", "time": 1}
    events = decode(callback_body(reply, callback(sid="a"), callback(sid="b")), "callback")
    assert [(e.source.index, e.message_id) for e in events] == [(1, "a"), (2, "b")]


@pytest.mark.parametrize(
    "endpoint",
    [
        "PullSmsSendStatus",
        "PullSmsSendStatusByPhoneNumber",
        "poll",
        "callback",
        "push",
        "SendSms",
        "submit",
    ],
)
def test_endpoint_aliases_let_the_body_decide(endpoint: str) -> None:
    assert one(SEED_POLL, endpoint).endpoint == "tencent.PullSmsSendStatus"
    assert one(SEED_CALLBACK, endpoint).endpoint == "tencent.callback"
    assert one(SEED_SEND, endpoint).endpoint == "tencent.SendSms"


def test_unknown_endpoint() -> None:
    with pytest.raises(UnknownFormat):
        decode(SEED_POLL, "bulk-status")


def test_unknown_fields_ignored() -> None:
    body = poll_body(poll_report(Extra={"a": [1, 2]}, More=None) | {"x": 1.5})
    assert one(body).status == "DELIVERED"


def test_report_order_and_index() -> None:
    body = poll_body(*(poll_report(SerialNo=f"s{i}") for i in range(5)))
    assert [(e.source.index, e.message_key) for e in decode(body)] == [
        (i, f"s{i}") for i in range(5)
    ]


# -- sniff --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "endpoint"),
    [
        (SEED_POLL, "PullSmsSendStatus"),
        (SEED_ERROR, "PullSmsSendStatus"),
        (SEED_REPLY_POLL, "PullSmsSendStatus"),
        (SEED_SEND_STATISTICS, "PullSmsSendStatus"),
        (SEED_CALLBACK_STATISTICS, "PullSmsSendStatus"),
        (SEED_SEND, "SendSms"),
        (SEED_CALLBACK, "callback"),
        (SEED_REPLY_CALLBACK, "callback"),
        (SEED_REPLY_CALLBACK_ARRAY, "callback"),
        (b'\xef\xbb\xbf \n{ "Response" : {}}', "PullSmsSendStatus"),
        (b'[{"report_status":"FAIL","errmsg":"MK:0001","mobile":"+8613711112222"}]', "callback"),
    ],
)
def test_sniff_recognises(body: bytes, endpoint: str) -> None:
    assert tencent.sniff(body) == endpoint
    assert endpoint in tencent.ENDPOINTS


@pytest.mark.parametrize("body", cases.bodies_of_other_providers("tencent"))
def test_sniff_ignores_other_providers(body: bytes) -> None:
    assert tencent.sniff(body) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"Action":"GetUSMSSendReceiptResponse"}',
        b'{"a":{"Response":1}}',  # not the envelope: Response is not the first key
        b'"nationcode":',
        b"\xff\xfe",
    ],
)
def test_sniff_ignores_other_bodies(body: bytes) -> None:
    assert tencent.sniff(body) is None


# -- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"Response":' * 50_000,
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"\xff","ReportStatus":"SUCCESS"}]}}',
        b'{"Response":{"PullSmsSendStatusSet":{}}}',  # wrong types
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":1.5,"ReportStatus":"SUCCESS"}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":7}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1"}]}}',  # missing ReportStatus
        b'{"Response":{"PullSmsSendStatusSet":[{"ReportStatus":"SUCCESS","PhoneNumber":"+1"}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"","ReportStatus":"SUCCESS",'
        b'"PhoneNumber":"+1"}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":"SUCCESS"}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":"SUCCESS",'
        b'"PhoneNumber":"+1","UserReceiveTime":1e400}]}}',
        b'{"Response":{"SendStatusSet":[{"SerialNo":"1","PhoneNumber":"+1","Code":"Ok",'
        b'"Fee":100000000000000000000}]}}',
        b'{"Response":{"SendStatusSet":[{"SerialNo":"1","PhoneNumber":"+1","Code":"Ok","Fee":-1}]}}',
        b'{"Response":{"SendStatusSet":[{"SerialNo":"1","PhoneNumber":"+1"}]}}',  # no Code
        b'{"Response":{"SendStatusSet":[{"SerialNo":"1","PhoneNumber":" ","Code":"Ok"}]}}',
        b'[{"sid":"1","report_status":"SUCCESS","mobile":"1","user_receive_time":1e400}]',
        b'[{"sid":"1","report_status":"SUCCESS"}]',  # no mobile
        b'[{"sid":"","report_status":"SUCCESS","mobile":"1"}]',
        b'[{"report_status":"SUCCESS","mobile":"1"}]',  # no sid
        b'[{"sid":"1","mobile":"1","nationcode":"86"}]',  # neither a status nor a reply
        b"[1, 2]",
        b'[{"sid":"1"',  # truncated
        b"null",
        b"\xef\xbb\xbf[]",
    ],
)
def test_hostile_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":"SUCCESS",'
        b'"PhoneNumber":"+1","UserReceiveTime":1000000000000000000000000000000}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":"SUCCESS",'
        b'"PhoneNumber":"+1","UserReceiveTime":-1}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":"SUCCESS",'
        b'"PhoneNumber":"+1","UserReceiveTime":"\xc2\xb2"}]}}',
        b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"1","ReportStatus":"SUCCESS",'
        b'"PhoneNumber":"+1","UserReceiveTime":"' + b"9" * 5000 + b'"}]}}',
        b'[{"sid":"1","report_status":"SUCCESS","mobile":"1","user_receive_time":"yesterday"}]',
        b'[{"sid":"1","report_status":"SUCCESS","mobile":"1",'
        b'"user_receive_time":"2015-02-30 08:03:04"}]',
    ],
)
def test_times_bad_time_costs_no_receipt(body: bytes) -> None:
    (e,) = decode(body)
    assert e.occurred_at is None and e.occurred_at_raw is not None and e.time_zone is None


def test_bad_tz_header_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="time zone"):
        decode(SEED_CALLBACK, "callback", tz="Not/AZone")


# -- properties ---------------------------------------------------------------------------------

# The property tests need only the data: the product's table, checked row by row by STATUS_ROWS.
FAIL_CODES = [*tencent._FAIL_BY_CODE, "MSBLACK", "DB:0103"]
#: The product's codes, folded here independently of its look-up.
FAIL_STATUS: dict[str, str] = {
    code.upper(): str(status) for code, status in tencent._FAIL_BY_CODE.items()
}
CALLBACK_KEYS = {
    "user_receive_time", "nationcode", "mobile", "report_status", "errmsg", "description", "sid",
    "text", "Response",
}  # fmt: skip
POLL_KEYS = {
    "UserReceiveTime", "CountryCode", "SubscriberNumber", "PhoneNumber", "SerialNo",
    "ReportStatus", "Description", "SessionContext",
}  # fmt: skip
SEND_KEYS = {"SerialNo", "PhoneNumber", "Fee", "SessionContext", "Code", "Message", "IsoCode"}
RESPONSE_KEYS = {
    "PullSmsSendStatusSet", "SendStatusSet", "Error", "RequestId", "PullSmsReplyStatusSet",
    "SendStatusStatistics", "CallbackStatusStatistics",
}  # fmt: skip


def expected_status(raw: str, code: str | None) -> str:
    raw = cases.folded(raw)
    if raw == "success":
        return "DELIVERED"
    if raw == "fail":
        return FAIL_STATUS.get(cases.folded(code or "").upper(), "UNDELIVERED")
    return "UNKNOWN"


serials = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**64, 2**90),
    st.text(min_size=1).filter(lambda t: 0 < len(t.strip().encode()) <= 256),
)
raw_statuses = st.sampled_from(["SUCCESS", "FAIL", "UNKNOWN"]) | st.text(max_size=8)
codes = st.sampled_from([*FAIL_CODES, "DELIVRD"]) | st.none()
# A poll Description: (wire value, expected provider_code, expected provider_message)
descriptions = st.one_of(
    codes.map(lambda c: (c, c, None)),
    st.text(min_size=1)
    .filter(lambda s: re.fullmatch(r"[A-Z0-9_:\-]+", s) is None)
    .map(lambda s: (s, None, cases.free_text(s))),
)
times = cases.epoch_or_local_times("Asia/Shanghai")
# (country code, national number, expected E.164)
numbers = st.tuples(
    st.sampled_from(["86", "1", "44", "33", "852", "81", "49"]),
    st.from_regex(r"[1-9][0-9]{6,10}", fullmatch=True),
    st.booleans(),
    # The phone rules are tested on their own (test_rules.py): here, that they are applied.
).map(lambda t: (t[0], n := ("0" + t[1]) if t[2] else t[1], to_e164(n, t[0], national_cn)))


def _text(serial: Any) -> str:
    return cases.key_text(serial)


@cases.PROPERTY
@given(
    rows=st.lists(
        st.tuples(
            serials,
            raw_statuses,
            codes,
            times,
            numbers,
            st.booleans(),
            st.text(),
            cases.extras(CALLBACK_KEYS),
        ),
        max_size=8,
    )
)
def test_property_callback(rows: list[Any]) -> None:
    items = []
    expected = []
    for index, row in enumerate(rows):
        sid, raw, code, (when, when_raw, occurred, zone), (cc, national, e164), *rest = row
        as_int_cc, desc, extra = rest
        items.append(
            extra
            | {
                "user_receive_time": when,
                "nationcode": int(cc) if as_int_cc else cc,
                "mobile": national,
                "report_status": raw,
                "errmsg": code,
                "description": desc,
                "sid": sid,
            }
        )
        expected.append(
            (index, _text(sid), _text(sid), raw, expected_status(raw, code), code,
             cases.free_text(desc),
             national, e164, occurred, when_raw, zone)
        )  # fmt: skip
    body = msgspec.json.encode(items)
    if items:
        assert tencent.sniff(body) == "callback"
    events = decode(body, "callback")
    assert [
        (e.source.index, e.message_key, e.message_id, e.provider_status, e.status, e.provider_code,
         e.provider_message, e.recipient_raw, e.recipient, e.occurred_at, e.occurred_at_raw,
         e.time_zone)
        for e in events
    ] == expected  # fmt: skip
    assert all(e.channel == "push" and e.endpoint == "tencent.callback" for e in events)


@cases.PROPERTY
@given(
    rows=st.lists(
        st.tuples(
            serials, raw_statuses, descriptions, times, numbers, st.sampled_from(["e164", "split"]),
            st.text(max_size=6), cases.extras(POLL_KEYS),
        ),
        max_size=8,
    ),
    top=cases.extras(RESPONSE_KEYS),
)  # fmt: skip
def test_property_poll(rows: list[Any], top: dict[str, Any]) -> None:
    items = []
    expected = []
    for index, row in enumerate(rows):
        (
            serial,
            raw,
            (description, code, message),
            (when, when_raw, occurred, zone),
            (cc, national, e164),
            form,
            ctx_,
            extra,
        ) = row
        phone = e164 if form == "e164" else national
        items.append(
            extra
            | {
                "UserReceiveTime": when,
                "CountryCode": cc,
                "SubscriberNumber": national,
                "PhoneNumber": phone,
                "SerialNo": serial,
                "ReportStatus": raw,
                "Description": description,
                "SessionContext": ctx_,
            }
        )
        expected.append(
            (index, _text(serial), raw, expected_status(raw, code), code, message, phone, e164,
             cases.id_text(ctx_), occurred, when_raw, zone)
        )  # fmt: skip
    body = msgspec.json.encode(
        {"Response": top | {"PullSmsSendStatusSet": items, "RequestId": "r"}}
    )
    assert tencent.sniff(body) == "PullSmsSendStatus"
    events = decode(body)
    assert [
        (e.source.index, e.message_key, e.provider_status, e.status, e.provider_code,
         e.provider_message, e.recipient_raw, e.recipient, e.client_ref, e.occurred_at,
         e.occurred_at_raw, e.time_zone)
        for e in events
    ] == expected  # fmt: skip


@cases.PROPERTY
@given(
    rows=st.lists(
        st.tuples(
            serials | st.just(""), st.sampled_from(["Ok", "LimitExceeded.PhoneNumberDailyLimit"])
            | st.text(max_size=8), numbers, st.integers(0, 2**31 - 1) | st.none(),
            st.text(max_size=6), cases.extras(SEND_KEYS),
        ),
        max_size=8,
    ),
    request_id=st.text(min_size=1, max_size=10).filter(lambda t: t.strip() != ""),
)  # fmt: skip
def test_property_submit(rows: list[Any], request_id: str) -> None:
    items = []
    expected = []
    for index, (serial, code, (_, _, e164), fee, message, extra) in enumerate(rows):
        if serial == "" and cases.folded(code) == "ok":
            code = "LimitExceeded"  # an accepted submit without a SerialNo breaks the identity rule
        items.append(
            extra
            | {
                "SerialNo": serial,
                "PhoneNumber": e164,
                "Fee": fee,
                "Code": code,
                "Message": message,
            }
        )
        key = _text(serial) if serial != "" else f"{request_id.strip()}|{e164}"
        status = "PENDING" if cases.folded(code) == "ok" else "FAILED"
        expected.append((index, key, status, code, None, cases.free_text(message), fee, e164))
    body = msgspec.json.encode({"Response": {"SendStatusSet": items, "RequestId": request_id}})
    assert tencent.sniff(body) == "SendSms"
    events = decode(body, "SendSms")
    assert [
        (e.source.index, e.message_key, e.status, e.provider_status, e.provider_code,
         e.provider_message, e.segments, e.recipient)
        for e in events
    ] == expected  # fmt: skip
    assert all(e.occurred_at is None and e.channel == "submit" for e in events)


VALID_BODIES = [
    SEED_POLL,
    SEED_SEND,
    SEED_CALLBACK,
    SEED_ERROR,
    SEED_REPLY_POLL,
    SEED_SEND_STATISTICS,
    SEED_REPLY_CALLBACK,
]


@settings(max_examples=400, deadline=timedelta(seconds=1))
@given(body=st.binary(max_size=512) | st.binary(max_size=512).map(lambda b: b'{"Response":' + b))
def test_arbitrary_bytes_only_raise_decode_errors(body: bytes) -> None:
    cases.survives(tencent, body, ["PullSmsSendStatus"], ctx())


@settings(max_examples=600, deadline=timedelta(seconds=1))
@given(body=mutated(st.sampled_from(VALID_BODIES)))
def test_mutated_bodies_only_raise_decode_errors(body: bytes) -> None:
    cases.survives(tencent, body, ["PullSmsSendStatus"], ctx())
