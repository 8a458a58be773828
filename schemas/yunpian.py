"""Yunpian "Push Status Records" (seed 002): the JSON array inside `sms_status=`."""

from __future__ import annotations

from ._wire import Id, Time, Wire


class YunpianReport(Wire):
    sid: Id | None
    mobile: str
    report_status: str
    uid: Id | None = None
    user_receive_time: Time | None = None
    error_msg: str | None = None
    error_detail: str | None = None
