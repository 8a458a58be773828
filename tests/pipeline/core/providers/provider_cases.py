"""What the decoder tests of every provider share: small bodies of every provider's formats (no
sniffer may claim another provider's), the check that a decoder survives any input, and the
Hypothesis strategies and settings of the property tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pipeline.core.normalise import RecordContext
from pipeline.core.providers import ProviderModule
from pipeline.errors import DecodeError, NotReceipts
from schemas import ReceiptEvent

#: Literal bodies by "<provider>.<form>", each recognised by its own provider's sniffer only.
FORMAT_BODIES: dict[str, bytes] = {
    "yunpian.push": b"sms_status=%5B%7B%22sid%22%3A9527%2C%22uid%22%3Anull%2C%22user_receive_time"
    b"%22%3A%222014-03-17+22%3A55%3A21%22%2C%22error_msg%22%3A%22%22%2C%22mobile%22%3A%22152052013"
    b"14%22%2C%22report_status%22%3A%22SUCCESS%22%7D%5D",
    "yunpian.push_minimal": b"sms_status=%5B%7B%22sid%22%3A9527%2C%22report_status%22%3A%22SUCCESS"
    b"%22%7D%5D",
    # Yunpian's inner array, had it arrived as raw JSON, must not look like a Tencent callback.
    "yunpian.inner_json": b'[{"sid":9527,"uid":null,"user_receive_time":"2014-03-17 22:55:21",'
    b'"error_msg":"","error_detail":"","mobile":"15205201314","report_status":"SUCCESS"}]',
    "uspeedo.poll": b'{"Action":"GetUSMSSendReceiptResponse","RetCode":0,"Data":[{"SessionNo":'
    b'"s1","ReceiptSet":[{"Phone":"8618512345678","CostCount":1,"ReceiptResult":"Success",'
    b'"ReceiptCode":"DELIVRD","ReceiptDesc":"ok","ReceiptTime":1600000000,"UserId":"u1"}]}]}',
    "uspeedo.poll_minimal": b'{"Action":"GetUSMSSendReceiptResponse","RetCode":0,"Data":[{'
    b'"SessionNo":"s","ReceiptSet":[{"Phone":"8613800138000","ReceiptResult":"Success"}]}]}',
    "uspeedo.error": b'{"Action":"GetUSMSSendReceiptResponse","RetCode":170,"Message":"bad"}',
    "uspeedo.error_without_action": b'{"RetCode":170,"Message":"Missing AccountId"}',
    "uspeedo.push": b'{"MsgType":2,"Data":[{"SessionNo":"s1","Phone":"8618512345678",'
    b'"CostCount":1,"ReceiptTime":1600000000,"ReceiptResult":"Success","ReceiptCode":"DELIVRD",'
    b'"UserId":"u"}]}',
    "uspeedo.push_minimal": b'{"MsgType":2,"Data":[{"SessionNo":"s","Phone":"8613800138000",'
    b'"ReceiptResult":"Fail"}]}',
    "uspeedo.inbound": b'{"MsgType":0,"Data":[]}',
    "uspeedo.array": b'[{"SessionNo":"s1","Phone":"8618512345678","ReceiptResult":"Fail"}]',
    "uspeedo.array_with_country_code": b'[{"SessionNo":"s1","Phone":"8618512345678",'
    b'"ReceiptResult":"Fail","CountryCode":"86"}]',
    "uspeedo.array_success": b'[{"SessionNo":"s","Phone":"8613800138000",'
    b'"ReceiptResult":"Success"}]',
    "ultiroam.poll": b'{"error_code":200,"sn":"xxxx-xxxx","result":[{"port":1,"user_id":7,'
    b'"number":"10086","time":"2016-05-18 14:33:59","status":"DELIVERED","count":1,'
    b'"succ_count":1,"ref_id":12,"imsi":"460001234567890"}]}',
    "ultiroam.poll_empty": b'{"error_code":200,"sn":"x","result":[]}',
    "ultiroam.error": b'{"error_code":413,"sn":"xxxx-xxxx"}',
    "ultiroam.sms_result": b'{"sn":"xxxx","sms_result":[{"port":2,"number":"10086",'
    b'"time":"2016-05-18 14:33:59","status":"SENT_OK","count":1,"succ_count":1,"ref_id":3}]}',
    "ultiroam.sms_result_seed": b'{"sn":"xxxx-xxxx-xxxx-xxxx","sms_result":[{"port":1,"number":'
    b'"10086","time":"2016-07-12 01:46:02","status":"DELIVERED","count":1,"succ_count":1,'
    b'"ref_id":215}]}',
    "ultiroam.sms_deliver_status": b'{"sn":"xxxx","sms_deliver_status":[{"port":2,'
    b'"number":"10086","time":"2016-05-18 14:33:59","ref_id":3,"status_code":0}]}',
    "ultiroam.sms_deliver_status_empty": b'{"sn":"x","sms_deliver_status":[]}',
    "ultiroam.sms": b'{"sn":"xxxx","sms":[{"port":2,"number":"10086","text":"hi"}]}',
    "ultiroam.sms_port_1": b'{"sn":"x","sms":[{"port":1,"number":"10086","text":"hi"}]}',
    "smspartner.json": b'{"success":true,"code":200,"message_id":"111","StatutResponse_List":'
    b'[{"phoneNumber":"+33612345671","status":"Delivered","stopSMS":false,"date":"1517989111"}]}',
    "smspartner.json_numeric_id": b'{"success":true,"code":200,"message_id":1,'
    b'"StatutResponse_List":[{"phoneNumber":"+33612345678","status":"Delivered","stopSMS":"0",'
    b'"date":"1514383645"}]}',
    "smspartner.error": b'{"success":false,"code":10,"message":"Cl\xc3\xa9 API incorrecte"}',
    "smspartner.error_in_english": b'{"success":false,"code":10,"message":"Api key invalid"}',
    "smspartner.xml": b"<?xml version='1.0' encoding='UTF-8'?><result><entry>true</entry>"
    b"<entry>200</entry><entry>11</entry></result>",
    "smspartner.xml_head_only": b'<?xml version="1.0"?><result><entry>true</entry>'
    b"<entry>200</entry></result>",
    "tencent.poll": b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"5000:1","ReportStatus":'
    b'"SUCCESS","PhoneNumber":"+8613711112222"}],"RequestId":"r"}}',
    "tencent.poll_uuid_request": b'{"Response":{"PullSmsSendStatusSet":[{"SerialNo":"5000:1",'
    b'"PhoneNumber":"+8613711112222","ReportStatus":"SUCCESS"}],"RequestId":"a0aabda6"}}',
    "tencent.error": b'{"Response":{"Error":{"Code":"AuthFailure","Message":"no"},'
    b'"RequestId":"r"}}',
    "tencent.error_x": b'{"Response":{"Error":{"Code":"AuthFailure","Message":"x"},'
    b'"RequestId":"r"}}',
    "tencent.callback": b'[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86",'
    b'"mobile":"13711112222","report_status":"SUCCESS","errmsg":"DELIVRD","sid":"x"}]',
    "tencent.callback_with_description": b'[{"user_receive_time":"2015-10-17 08:03:04",'
    b'"nationcode":"86","mobile":"13900000000","report_status":"SUCCESS","errmsg":"DELIVRD",'
    b'"description":"ok","sid":"x"}]',
    "tencent.reply": b'{"extend":"","mobile":"13711112222","nationcode":"86","sign":"s",'
    b'"text":"hi","time":1457336869}',
}


def bodies_of_other_providers(provider: str) -> list[Any]:
    """Every body of `FORMAT_BODIES` that is not `provider`'s, as params named by format."""
    return [
        pytest.param(body, id=name)
        for name, body in FORMAT_BODIES.items()
        if name.partition(".")[0] != provider
    ]


def decode_one(
    decoder: ProviderModule, body: bytes, endpoint: str, ctx: RecordContext
) -> ReceiptEvent:
    events = decoder.decode(body, endpoint, ctx)
    assert len(events) == 1
    return events[0]


def survives(
    decoder: ProviderModule, body: bytes, endpoints: Sequence[str], ctx: RecordContext
) -> None:
    """Sniffing `body` raises nothing; decoding it at each endpoint gives events that encode,
    or raises a DecodeError or NotReceipts: never anything else."""
    decoder.sniff(body)
    for endpoint in endpoints:
        try:
            events = decoder.decode(body, endpoint, ctx)
        except (DecodeError, NotReceipts):
            continue
        for event in events:
            msgspec.json.encode(event)


# --- property tests ----------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=150, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow]
)

#: Text of any code point, as JSON strings may carry.
text = st.text(st.characters(codec="utf-8"), max_size=12)
#: Ids as providers send them: integers beyond 64 bits either way, or text.
ids = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**64, 2**80),
    st.integers(-(2**80), -(2**64)),
    text,
)
#: Any JSON value, for fields the decoders must ignore.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)

#: The last second of year 9999, the latest time an event can carry.
MAX_EPOCH = 253_402_300_799


def extras(known: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Unknown fields (none of `known`) with any values."""
    return st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in known), json_values, max_size=3
    )


def epoch_utc(seconds: int) -> str:
    return f"{datetime(1970, 1, 1) + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%SZ}"


def epoch_or_local_times(zone: str) -> st.SearchStrategy[tuple[Any, ...]]:
    """(wire value, expected raw, expected occurred_at, expected time_zone): epoch seconds as
    a number or a string, a naive local time of `zone`, or none."""
    tz = ZoneInfo(zone)

    def local(dt: datetime) -> tuple[str, str, str, str]:
        wire = dt.strftime("%Y-%m-%d %H:%M:%S")
        return (
            wire,
            wire,
            # fold=0: a wall time that occurs twice is its first occurrence (RFC 5545).
            dt.replace(tzinfo=tz, fold=0).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            zone,
        )

    # Epoch seconds from 2000 (earlier values are placeholders) below 10^11 (milliseconds).
    epochs = st.integers(946_684_800, 10**11 - 1)
    return st.one_of(
        epochs.map(lambda s: (s, str(s), epoch_utc(s), None)),
        epochs.map(lambda s: (str(s), str(s), epoch_utc(s), None)),
        st.datetimes(datetime(1971, 1, 1), datetime(2100, 1, 1)).map(
            lambda d: local(d.replace(microsecond=0))
        ),
        st.just((None, None, None, None)),
    )


def _valid_key(value: Any) -> bool:
    return not isinstance(value, str) or 0 < len(value.strip().encode()) <= 256


#: Ids that satisfy the identity rule (present once trimmed, at most 256 bytes).
key_ids = ids.filter(_valid_key)


def key_text(value: Any) -> str:
    """An identity component as the key holds it: trimmed text, or a number's decimal text."""
    return value.strip() if isinstance(value, str) else str(value)


def id_text(value: Any) -> str | None:
    """An id (`client_ref`, ...) as an event holds it: trimmed, empty is null."""
    return None if value is None else key_text(value) or None


def free_text(value: str | None) -> str | None:
    """Free text as an event holds it: verbatim, empty or whitespace only is null."""
    return value if value and not value.isspace() else None


def folded(value: str) -> str:
    """A status or code as the look-ups match it."""
    return value.strip().casefold()
