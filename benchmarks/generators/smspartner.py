"""SMS Partner bodies: bulk-status JSON, positional XML, single-message form."""

from __future__ import annotations

import heapq
from typing import Any, Final

from benchmarks.generators.stream import Stream
from benchmarks.generators.truth import Msg, Proto, Seen
from benchmarks.generators.values import _cumulative, _dumps, _phone, _pick, local_text


class SmspartnerGenerator(Stream):
    """SMS Partner poll bodies."""

    _SMSPARTNER_COUNTRIES: Final = _cumulative(
        ("FR", 86.0), ("BE", 5.0), ("DE", 4.0), ("GB", 3.0), ("US", 2.0)
    )

    def _smspartner_bulk(self) -> Any:
        rng = self.rng
        x = rng.random()
        fmt = "json" if x < 0.67 else "xml" if x < 0.93 else "single"
        if fmt == "single":
            size = 1
        else:
            y = rng.random()
            size = 1 if y < 0.3 else rng.randint(2, 20) if y < 0.7 else rng.randint(21, 100)
        self.smspartner_id += rng.randint(1, 9)
        sent = self.now // 1000 - rng.randint(20, 90)
        recipients = []
        numbers: list[str] = []
        for _ in range(size):
            cc, nsn = _phone(rng, _pick(rng, self._SMSPARTNER_COUNTRIES))
            if cc == "33" and rng.random() < 0.2:
                raw = (
                    f"0{nsn}"
                    if rng.random() < 0.75
                    else " ".join(f"0{nsn}"[i : i + 2] for i in range(0, 10, 2))
                )
            else:
                raw = f"+{cc}{nsn}"
            if nsn in numbers:
                continue
            numbers.append(nsn)
            final_after = int(rng.expovariate(1 / 90.0)) + 2  # seconds after sending
            final = "Delivered" if rng.random() < 0.9 else "Not delivered"
            recipients.append((Msg(), raw, sent + final_after, final, rng.random() < 0.02))
        dates = "epoch" if rng.random() < 0.8 else "local"
        return (str(self.smspartner_id), fmt, dates, sent, recipients, rng.random() < 0.5)

    def _smspartner(self, cap: int) -> Proto | None:
        rng = self.rng
        polls = self.smspartner_polls
        if polls and polls[0][0] <= self.now:
            _, _, number, bulk = heapq.heappop(polls)
            repoll = True
        else:
            bulk = self._smspartner_bulk()
            number = 0
            repoll = False
        message_id, fmt, dates, sent, recipients, pretty = bulk
        now_s = self.now // 1000
        # The client polls again later with decreasing probability (full list every time).
        if number < 2 and rng.random() < (0.35, 0.25)[number]:
            self.seq += 1
            due = self.now + (180_000, 900_000)[number] + rng.randrange(60_000)
            heapq.heappush(polls, (due, self.seq, number + 1, bulk))
        rows: list[tuple[Msg, str, str, str, bool]] = []
        seen: Seen = []
        for msg, raw, final_at, final, stop in recipients[:cap]:
            if final_at <= now_s and not (repoll and rng.random() < 0.015):
                status, when = final, final_at
            else:  # still waiting (or, in a re-poll, the provider's view regressed: stale)
                status, when = "Waiting", sent
            date = str(when) if dates == "epoch" else local_text(when, "Europe/Paris")
            rows.append((msg, raw, status, date, stop))
            seen.append(
                (
                    msg,
                    "SENT"
                    if status == "Waiting"
                    else "DELIVERED"
                    if status == "Delivered"
                    else "UNDELIVERED",
                )
            )
        if fmt == "single":
            msg, raw, status, date, stop = rows[0]
            body = _dumps(
                {
                    "success": True,
                    "code": 200,
                    "number": raw,
                    "messageId": int(message_id),
                    "stopSms": stop,
                    "date": date,
                    "statut": status,
                    "cost": 0.045,
                }
            )
            return Proto("smspartner", "single", "message-status", body, seen)
        if fmt == "json":
            body = _dumps(
                {
                    "success": True,
                    "code": 200,
                    "message_id": message_id,
                    "StatutResponse_List": [
                        {"phoneNumber": raw, "status": status, "stopSMS": stop, "date": date}
                        for _, raw, status, date, stop in rows
                    ],
                }
            )
            return Proto("smspartner", "json", "bulk-status", body, seen)
        body = _smspartner_xml(message_id, [(r, s, st, d) for _, r, s, d, st in rows], pretty)
        return Proto("smspartner", "xml", "bulk-status", body, seen, ctype="application/xml")


def _smspartner_xml(message_id: str, rows: list[tuple[str, str, bool, str]], pretty: bool) -> bytes:
    """The positional XML of the seed: success, code, message_id, then a list of recipients."""
    if pretty:
        parts = [
            "<?xml version='1.0' encoding='UTF-8'?>\n<result>\n"
            "  <entry>true</entry>\n  <entry>200</entry>\n",
            f"  <entry>\n    <![CDATA[{message_id}]]>\n  </entry>\n  <entry>\n",
        ]
        for phone, status, stop, date in rows:
            parts.append(
                f"    <entry>\n      <entry>\n        <![CDATA[{phone}]]>\n      </entry>\n"
                f"      <entry>\n        <![CDATA[{status}]]>\n      </entry>\n"
                f"      <entry>{'true' if stop else 'false'}</entry>\n"
                f"      <entry>\n        <![CDATA[{date}]]>\n      </entry>\n    </entry>\n"
            )
        parts.append("  </entry>\n</result>\n")
    else:
        parts = [
            "<?xml version='1.0' encoding='UTF-8'?><result><entry>true</entry><entry>200</entry>",
            f"<entry><![CDATA[{message_id}]]></entry><entry>",
        ]
        for phone, status, stop, date in rows:
            parts.append(
                f"<entry><entry><![CDATA[{phone}]]></entry><entry><![CDATA[{status}]]></entry>"
                f"<entry>{'true' if stop else 'false'}</entry>"
                f"<entry><![CDATA[{date}]]></entry></entry>"
            )
        parts.append("</entry></result>")
    return "".join(parts).encode()
