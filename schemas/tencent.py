"""Tencent Cloud SMS (seed 004): `PullSmsSendStatus` and `SendSms` responses, status callbacks.

Non-receipt parts (reply status, statistics) are declared as `Raw`: only their presence matters,
so their content is never validated or materialised.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Raw, UnsetType

from ._wire import Wire

# Billable segments per recipient; the cap only rejects absurd values (fits a signed int32).
Fee = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]


class TencentPullStatus(Wire):
    SerialNo: str | int
    ReportStatus: str
    PhoneNumber: str | None = None
    CountryCode: str | int | None = None
    SubscriberNumber: str | None = None
    UserReceiveTime: int | str | None = None
    Description: str | None = None
    SessionContext: str | None = None


class TencentSendStatus(Wire):
    PhoneNumber: str
    Code: str
    # Empty when the send failed for this number.
    SerialNo: str | int | None = None
    Fee: Fee | None = None
    SessionContext: str | None = None
    Message: str | None = None


class TencentError(Wire):
    Code: str | int | None = None
    Message: str | None = None


class TencentResponse(Wire):
    # UNSET (absent) and None (null) differ: a null set is an empty answer, absence is another kind.
    PullSmsSendStatusSet: list[TencentPullStatus] | UnsetType | None = UNSET
    SendStatusSet: list[TencentSendStatus] | UnsetType | None = UNSET
    Error: TencentError | None = None
    RequestId: str | None = None
    PullSmsReplyStatusSet: Raw | UnsetType = UNSET
    SendStatusStatistics: Raw | UnsetType = UNSET
    CallbackStatusStatistics: Raw | UnsetType = UNSET


class TencentCallback(Wire):
    """One object of a callback array: a status report, or a reply (`text`, `sign`)."""

    sid: str | int | None = None
    report_status: str | None = None
    mobile: str | None = None
    nationcode: str | int | None = None
    # `YYYY-MM-DD HH:MM:SS` (Asia/Shanghai) in the docs; epoch seconds seen too.
    user_receive_time: str | int | None = None
    errmsg: str | None = None
    description: str | None = None
    text: Raw | UnsetType = UNSET


class TencentObject(TencentCallback):
    """A JSON object body: an API response envelope, or a single callback object."""

    Response: TencentResponse | None = None
