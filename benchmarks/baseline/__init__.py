"""The straightforward baseline: the same job as `pipeline.core.Core`, written the usual way.

Per record: headers or shape decide the provider, then `json.loads` into dicts (`urllib.parse`
for Yunpian's form bodies, `xml.etree.ElementTree` for SMS Partner's XML with any DOCTYPE
refused), one dict per canonical event with `phonenumbers` for E.164, `datetime`/`zoneinfo` for
every time value, a plain dict for the dedupe window, `hashlib` for `event_id` and `json.dumps`
for the output. No caches, no fast paths: what a competent developer writes when speed is not
the question. It is written from the canonical event contract (field rules, status mappings,
window rules), not from the decoders, so equal output is a real cross-check of both.

Its status and code tables are derived from the documents, not copied from the decoders: each is
written the way the contract's "The providers" section (and the provider's own page, where
it lists the values) states it, as the statuses with the values that lead to them, or for the
GSM TP-Status as the contract's ranges; each names the section it comes from. None is imported
from `pipeline.core`, so none is shared.

Two rules the contract leaves open are taken from the decoders (both are the only sensible
reading, and the point here is equal output):
- `event_id` is BLAKE2b-128 of `provider \\x1f message_key \\x1f status` (the contract says "a
  128-bit digest of the dedupe identity" without naming the digest);
- a Tencent `SendSms` result whose send failed carries an empty `SerialNo`; it is keyed by
  `RequestId|recipient` so that failures of different numbers stay distinct.

The package: `_common` holds what the providers share (the failures and `Output`, the JSON and
field helpers, the time and recipient helpers, `Context` and `event`); one module per provider
(`uspeedo`, `ultiroam`, `yunpian`, `smspartner`, `tencent`) holds its decoder and its status
tables; `_run` holds the routing (`DECODERS`, `sniff`), the dedupe window and the encoding: the
`Baseline` class, the one name the benchmarks import.
"""

from __future__ import annotations

from benchmarks.baseline._run import Baseline

__all__ = ["Baseline"]
