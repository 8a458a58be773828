"""uSpeedo: `GetUSMSSendReceipt` poll responses and pushes."""

from __future__ import annotations

from typing import Any

from benchmarks.baseline._common import (
    CARRIER_FAIL_GROUPS,
    Context,
    Failure,
    NotReceipts,
    ProviderFailure,
    as_list,
    cc_rule,
    event,
    from_epoch,
    grouped,
    load_json,
    recipient,
    refine_failure,
    require,
    text_or_none,
)

# -- uSpeedo --------------------------------------------------------------------------------------

# The contract's uSpeedo section (docs/contract.md, "The providers", uspeedo,
# `ReceiptResult`): each status with the spellings that lead to it, matched ignoring case.
# uSpeedo's GetUSMSSendReceipt documentation ("ReceiptPerPhone", ReceiptResult) enumerates
# Success, Fail, Unknow and SubmitFail; the contract adds the Chinese and long English forms.
USPEEDO_RESULT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "DELIVERED": ("Success", "发送成功", "Sent successfully"),
    "UNDELIVERED": ("Fail", "发送失败", "Sending failed"),
    "UNKNOWN": ("Unknow", "UNKNOWN", "状态未知", "Unknown state"),
    "FAILED": ("SubmitFail",),
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
        status = grouped(USPEEDO_RESULT_SPELLINGS, result, fold=True) or "UNKNOWN"
        status = refine_failure(status, code, CARRIER_FAIL_GROUPS)
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
