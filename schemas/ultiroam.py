"""Ultiroam GSM gateway (seed 001): `query_sms_result` poll and the `sms_result` /
`sms_deliver_status` pushes, which share one URL with non-receipt pushes (`sms`, `ussd`, ...)."""

from __future__ import annotations

from ._wire import Wire


class UltiroamResult(Wire):
    """One SMS sending result (`result` / `sms_result` item; pushes may omit `user_id`)."""

    port: int | str
    number: str
    time: str
    status: str
    ref_id: int | str
    user_id: int | str | None = None
    count: int | None = None
    succ_count: int | None = None


class UltiroamDeliverStatus(Wire):
    """One delivery report (`sms_deliver_status` item); `status_code` is the GSM TP-Status."""

    port: int | str
    number: str
    time: str
    ref_id: int | str
    status_code: int


class UltiroamBody(Wire):
    """Every form in one struct: exactly one receipt key is expected to be present."""

    sn: int | str | None = None
    error_code: int | None = None
    result: list[UltiroamResult] | None = None
    sms_result: list[UltiroamResult] | None = None
    sms_deliver_status: list[UltiroamDeliverStatus] | None = None


class UltiroamHead(Wire):
    """Read only when the full body fails to decode: an error answer may carry anything."""

    error_code: int | str | None = None
