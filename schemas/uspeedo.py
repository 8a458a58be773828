"""uSpeedo (seed 000): the `GetUSMSSendReceipt` poll response and the `MsgType` push callback.

Object bodies are first read as an envelope whose `Data` stays raw, so a provider error
(`RetCode != 0`) or a non-receipt push (`MsgType != 2`) is classified before its `Data` is typed.
"""

from __future__ import annotations

import msgspec

from ._wire import Id, Integer, Time, Wire


class UspeedoEnvelope(Wire):
    """Either object form: poll (`Action`/`RetCode`) or push (`MsgType`)."""

    RetCode: Integer | None = None
    Message: str | None = None
    Action: str | None = None
    MsgType: Integer | None = None
    AccountId: Id | None = None
    # Empty when absent (msgspec cannot put Raw in a union with None).
    Data: msgspec.Raw = msgspec.Raw()


class UspeedoReceipt(Wire):
    """Poll `ReceiptPerPhone`."""

    Phone: str | None
    ReceiptResult: str
    CostCount: Integer | None = None
    ReceiptCode: int | str | None = None
    ReceiptDesc: str | None = None
    ReceiptTime: Time | None = None
    UserId: Id | None = None
    CountryCode: Id | None = None


class UspeedoSession(Wire):
    """Poll `ReceiptPerSession`."""

    SessionNo: Id | None
    ReceiptSet: list[UspeedoReceipt]


class UspeedoPushReceipt(UspeedoReceipt, kw_only=True):
    """One pushed receipt (`MsgType` 2 `Data` item, or an item of a bare array): a poll receipt
    that carries its own `SessionNo`."""

    SessionNo: Id | None = None
    AccountId: Id | None = None
