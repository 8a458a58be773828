"""Helpers of the ingress tests: the ingress as a subprocess (`python -m pipeline ingress`), the
push bodies of every provider, and a bounded loopback client."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .conftest import Proc

#: Yunpian's documented push example, as Yunpian sends it: form-encoded, the JSON array
#: URL-encoded.
YUNPIAN_RECORDS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "yunpian_seed_example.json").read_text(encoding="utf-8")
)
FORM = b"application/x-www-form-urlencoded;charset=utf-8"
JSON = b"application/json"


def yunpian_body(records: Sequence[dict[str, Any]] = YUNPIAN_RECORDS) -> bytes:
    text = json.dumps(list(records), ensure_ascii=False, separators=(",", ":"))
    return b"sms_status=" + urllib.parse.quote(text).encode()


def yunpian_push(sid: int, status: str = "SUCCESS") -> bytes:
    return yunpian_body(
        [{**YUNPIAN_RECORDS[0], "sid": sid, "uid": f"u{sid}", "report_status": status}]
    )


TENCENT_CALLBACK = json.dumps(
    [
        {
            "user_receive_time": "2015-10-17 08:03:04",
            "nationcode": "86",
            "mobile": "13xxxxxxxxx",
            "report_status": "SUCCESS",
            "errmsg": "DELIVRD",
            "description": "用户短信送达成功",
            "sid": "xxxxx",
        }
    ],
    ensure_ascii=False,
).encode()
USPEEDO_PUSH = (
    b'{"MsgType":2,"Data":[{"SessionNo":"s-1","Phone":"8618512345678","CostCount":1,'
    b'"ReceiptTime":1700000000,"ReceiptResult":"Success","ReceiptCode":"DELIVRD",'
    b'"ReceiptDesc":"ok","UserId":"u1"}]}'
)
ULTIROAM_PUSH = (
    b'{"sn":"xxxx-xxxx-xxxx-xxxx","sms_result":[{"port":1,"number":" 10086","time":'
    b'"2016-07-12 01:46:02","status":"DELIVERED","count":1,"succ_count":1,"ref_id":215,'
    b'"imsi":"460004642148063"}]}'
)
USPEEDO_POLL = (
    b'{"Action":"GetUSMSSendReceiptResponse","RetCode":0,"Data":[{"SessionNo":"s-2",'
    b'"ReceiptSet":[{"Phone":"8618512345678","CostCount":1,"ReceiptResult":"Success",'
    b'"ReceiptCode":"DELIVRD","ReceiptDesc":"ok","ReceiptTime":1700000000,"UserId":"u2"}]}]}'
)


def ingress_args(bootstrap: str, raw_topic: str, *extra: str) -> list[str]:
    return [
        "ingress",
        "--bootstrap-servers",
        bootstrap,
        "--raw-topic",
        raw_topic,
        "--port",
        "0",
        "--startup-timeout-s",
        "30",
        *extra,
    ]


async def start_ingress(
    spawn: Callable[..., Proc], bootstrap: str, raw_topic: str, *extra: str
) -> tuple[Proc, str]:
    proc = spawn(ingress_args(bootstrap, raw_topic, *extra))
    line = await proc.wait_log("ingress listening", timeout=60)
    return proc, f"http://127.0.0.1:{line['port']}"
