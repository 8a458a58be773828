"""Ultiroam GSM gateway (seed 001): `query_sms_result` poll and the `sms_result` /
`sms_deliver_status` pushes, which share one URL with non-receipt pushes (`sms`, `ussd`, ...)."""

from __future__ import annotations

from ._wire import Id, Integer, Time, Wire


class UltiroamResult(Wire):
    """One SMS sending result (`result` / `sms_result` item; pushes may omit `user_id`)."""

    port: Id | None
    number: str | None
    time: Time | None
    status: str
    ref_id: Id | None
    user_id: Id | None = None
    count: Integer | None = None
    succ_count: Integer | None = None


class UltiroamDeliverStatus(Wire):
    """One delivery report (`sms_deliver_status` item); `status_code` is the GSM TP-Status."""

    port: Id | None
    number: str | None
    time: Time | None
    ref_id: Id | None
    status_code: Integer


class UltiroamBody(Wire):
    """Every form in one struct: exactly one receipt key is expected to be present."""

    sn: Id | None = None
    error_code: Integer | None = None
    result: list[UltiroamResult] | None = None
    sms_result: list[UltiroamResult] | None = None
    sms_deliver_status: list[UltiroamDeliverStatus] | None = None


class UltiroamHead(Wire):
    """Read only when the full body fails to decode: an error answer may carry anything."""

    error_code: int | str | None = None
