"""SMS Partner `bulk-status` poll (seed 003): the JSON response; the XML form is positional and
is read by the decoder itself (pipeline/providers/smspartner.py).

The single-message status API spells its fields `number`, `statut`, `stopSms`, `messageId`; both
spellings are declared, at report level and at the top level (a single-message body carries one
report's fields beside `success`/`code`).
"""

from __future__ import annotations

from msgspec import UNSET, UnsetType

from ._wire import Boolean, Id, Integer, Time, Wire


class SmsPartnerReport(Wire):
    phoneNumber: str | None = None
    number: str | None = None
    status: str | None = None
    statut: str | None = None
    stopSMS: Boolean | None = None
    stopSms: Boolean | None = None
    # A numeric string (epoch seconds) in the seed; an int or a local time string are accepted too.
    date: Time | None = None
    messageId: Id | None = None
    message_id: Id | None = None


class SmsPartnerResponse(SmsPartnerReport):
    success: Boolean | None = None
    code: Integer | None = None
    message: str | None = None
    # Absent (UNSET) means the single-message form; null is an empty list.
    StatutResponse_List: list[SmsPartnerReport] | UnsetType | None = UNSET
