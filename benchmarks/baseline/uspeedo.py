"""uSpeedo: `GetUSMSSendReceipt` poll responses and pushes."""

from __future__ import annotations

from typing import Any

from benchmarks.baseline._common import (
    FAIL_CODES,
    Context,
    Failure,
    NotReceipts,
    ProviderFailure,
    as_list,
    cc_rule,
    event,
    from_epoch,
    load_json,
    recipient,
    require,
    text_or_none,
)

# -- uSpeedo --------------------------------------------------------------------------------------

USPEEDO_STATUS = {
    "success": "DELIVERED",
    "发送成功": "DELIVERED",
    "sent successfully": "DELIVERED",
    "fail": "UNDELIVERED",
    "发送失败": "UNDELIVERED",
    "sending failed": "UNDELIVERED",
    "unknow": "UNKNOWN",
    "unknown": "UNKNOWN",
    "状态未知": "UNKNOWN",
    "unknown state": "UNKNOWN",
    "submitfail": "FAILED",
}


def uspeedo(body: bytes, ctx: Context) -> list[dict[str, Any]]:
    data = load_json(body)
    receipts: list[tuple[str, str, dict[str, Any], Any]] = []  # (channel, session, item, account)
    if isinstance(data, list):
        for item in as_list(data, "push array"):
            receipts.append(("push", item.get("SessionNo"), item, item.get("AccountId")))
    elif isinstance(data, dict):
        if data.get("MsgType") is not None:
            if data["MsgType"] != 2:
                raise NotReceipts()
            for item in as_list(data.get("Data"), "Data"):
                receipts.append(
                    (
                        "push",
                        item.get("SessionNo"),
                        item,
                        item.get("AccountId") or data.get("AccountId"),
                    )
                )
        elif data.get("RetCode") is not None:
            if data["RetCode"] != 0:
                raise ProviderFailure(f"RetCode {data['RetCode']}: {data.get('Message')}")
            for session in as_list(data.get("Data"), "Data"):
                for item in as_list(session.get("ReceiptSet"), "ReceiptSet"):
                    receipts.append(("poll", session.get("SessionNo"), item, data.get("AccountId")))
        else:
            raise Failure("neither MsgType nor RetCode")
    else:
        raise Failure("not an object")
    events = []
    for index, (channel, session, item, account) in enumerate(receipts):
        if not isinstance(session, (str, int)) or isinstance(session, bool):
            raise Failure("SessionNo")
        phone = require(item, "Phone", str)
        result = require(item, "ReceiptResult", str)
        code = text_or_none(item.get("ReceiptCode"))
        status = USPEEDO_STATUS.get(result.lower(), "UNKNOWN")
        if status == "UNDELIVERED" and code in FAIL_CODES:
            status = FAIL_CODES[code]
        number = recipient(phone, item.get("CountryCode"), cc_rule)
        receipt_time = item.get("ReceiptTime")
        occurred = None if receipt_time in (None, 0, "0", "") else from_epoch(receipt_time)
        endpoint = "uspeedo.GetUSMSSendReceipt" if channel == "poll" else "uspeedo.push"
        events.append(
            event(
                ctx,
                "uspeedo",
                channel,
                endpoint,
                index,
                f"{session}|{number}",
                status,
                result,
                phone,
                number,
                account=text_or_none(account),
                batch_id=str(session),
                client_ref=text_or_none(item.get("UserId")),
                provider_code=code or None,
                provider_message=item.get("ReceiptDesc") or None,
                segments=item.get("CostCount"),
                occurred_at=occurred,
                occurred_at_raw=text_or_none(receipt_time) or None,
            )
        )
    return events
