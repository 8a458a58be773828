"""Normalisation rules shared by every provider, one implementation per rule: identities, times,
lenient numbers, case-folding look-ups, phone numbers, and the event builder.

The core's bottom layer: providers state their field mapping and call these; nothing here
imports upwards, and nothing here does I/O.
"""

from ._context import RecordContext
from ._fields import event_id, make_event
from ._identity import MAX_KEY_PART_BYTES, code_or_none, id_or_none, key_part, text_or_none
from ._lookup import UNMAPPED_STATUSES, Lookup, fold, map_status
from ._numbers import NumberValue, boolean, integer
from ._phones import NationalRule, national_cn, national_fr, national_with_cc, recipient
from ._timefmt import format_epoch_ms, format_epoch_s, zone
from ._times import UNPARSED_TIMES, TimeFields, TimeValue, key_time, parse_time

__all__ = [
    "MAX_KEY_PART_BYTES",
    "UNMAPPED_STATUSES",
    "UNPARSED_TIMES",
    "Lookup",
    "NationalRule",
    "NumberValue",
    "RecordContext",
    "TimeFields",
    "TimeValue",
    "boolean",
    "code_or_none",
    "event_id",
    "fold",
    "format_epoch_ms",
    "format_epoch_s",
    "id_or_none",
    "integer",
    "key_part",
    "key_time",
    "make_event",
    "map_status",
    "national_cn",
    "national_fr",
    "national_with_cc",
    "parse_time",
    "recipient",
    "text_or_none",
    "zone",
]
