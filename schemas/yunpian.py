"""Yunpian "Push Status Records" (seed 002): the JSON array inside `sms_status=`."""

from __future__ import annotations

from ._wire import Wire


class YunpianReport(Wire):
    sid: int | str
    mobile: str
    report_status: str
    uid: str | int | None = None
    user_receive_time: str | None = None
    error_msg: str | None = None
    error_detail: str | None = None
