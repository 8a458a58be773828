"""Yunpian "Push Status Records" (seed 002): the JSON array inside `sms_status=`."""

from __future__ import annotations

import msgspec


class YunpianReport(msgspec.Struct):
    sid: int | str
    mobile: str
    report_status: str
    uid: str | int | None = None
    user_receive_time: str | None = None
    error_msg: str | None = None
    error_detail: str | None = None
