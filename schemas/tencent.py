"""Tencent Cloud SMS (seed 004): `PullSmsSendStatus` and `SendSms` responses, status callbacks.

Non-receipt parts (reply status, statistics) are declared as `Raw`: only their presence matters,
so their content is never validated or materialised.
"""

from __future__ import annotations

from msgspec import UNSET, Raw, UnsetType

from ._wire import Id, Integer, Time, Wire


class TencentPullStatus(Wire):
    SerialNo: Id | None
    ReportStatus: str
    PhoneNumber: str | None = None
    CountryCode: Id | None = None
    SubscriberNumber: str | None = None
    UserReceiveTime: Time | None = None
    Description: str | None = None
    SessionContext: str | None = None


class TencentSendStatus(Wire):
    PhoneNumber: str
    Code: str
    # Empty when the send failed for this number.
    SerialNo: Id | None = None
    Fee: Integer | None = None
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

    sid: Id | None = None
    report_status: str | None = None
    mobile: str | None = None
    nationcode: Id | None = None
    # `YYYY-MM-DD HH:MM:SS` (Asia/Shanghai) in the docs; epoch seconds seen too.
    user_receive_time: Time | None = None
    errmsg: str | None = None
    description: str | None = None
    text: Raw | UnsetType = UNSET


class TencentObject(TencentCallback):
    """A JSON object body: an API response envelope, or a single callback object."""

    Response: TencentResponse | None = None
