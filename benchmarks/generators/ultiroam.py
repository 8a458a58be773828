"""Ultiroam bodies: query_sms_result poll, sms_result and sms_deliver_status pushes."""

from __future__ import annotations

from typing import Any

from benchmarks.generators.stream import Stream
from benchmarks.generators.truth import Msg, Proto, Seen
from benchmarks.generators.values import _dumps, _phone, local_text


class UltiroamGenerator(Stream):
    """Ultiroam gateway bodies."""

    def _ultiroam_msg(self, gateway: int) -> tuple[Msg, Any]:
        rng = self.rng
        sn, tz = self.ultiroam_gateways[gateway]
        port = rng.randrange(32)
        refs = self.ultiroam_refs[gateway]
        ref_id = refs[port]
        refs[port] = (ref_id + 1) & 255
        x = rng.random()
        if x < 0.5:
            cc, nsn = _phone(rng, "CN")
            number = f"+{cc}{nsn}"
        elif x < 0.78:
            number = _phone(rng, "CN")[1]  # national: no rule makes it E.164, kept as sent
        elif x < 0.83:
            cc, nsn = _phone(rng, "CN")
            number = f"+{cc} {nsn[:3]}-{nsn[3:7]}-{nsn[7:]}"
        elif x < 0.86:
            number = (" 10086", "10010", "95588", " 1065502")[rng.randrange(4)]
        else:
            cc, nsn = _phone(rng, ("DE", "FR", "IN", "US")[rng.randrange(4)])
            number = f"+{cc}{nsn}"
        sent = local_text(self.now // 1000 - rng.randint(1, 30), tz or "UTC")
        imsi = f"4600046421480{port:02d}"
        return Msg(), (
            sn,
            tz,
            port,
            number,
            ref_id,
            sent,
            self._uid() % 100000,
            rng.randint(1, 3),
            imsi,
        )

    def _ultiroam(self, cap: int) -> Proto:
        rng = self.rng
        x = rng.random()
        kind = "query_sms_result" if x < 0.3 else "sms_deliver_status" if x < 0.6 else "sms_result"
        gateway = rng.randrange(len(self.ultiroam_gateways))
        sn, tz = self.ultiroam_gateways[gateway]
        q = self._q(f"ultiroam.{kind}.{gateway}")
        if kind == "sms_deliver_status":
            reports = q.take(self.now, min(rng.randint(1, 10), cap))
            if not reports:
                kind = "sms_result"
                q = self._q(f"ultiroam.{kind}.{gateway}")
        if kind != "sms_deliver_status":
            limit = min(
                rng.randint(1, 32) if kind == "query_sms_result" else rng.randint(1, 10), cap
            )
            reports = []
            if kind == "query_sms_result" and rng.random() < 0.15:
                reports = self.last_page.get(f"ultiroam.{gateway}", [])[-rng.randint(1, 8) :][
                    :limit
                ]
            reports += q.take(self.now, limit - len(reports))
            while len(reports) < limit:
                reports.append(self._ultiroam_new(gateway, kind))
            if kind == "query_sms_result":
                self.last_page[f"ultiroam.{gateway}"] = reports
        seen: Seen = []
        items = []
        for msg, f, status, with_user in reports:
            _sn, _tz, port, number, ref_id, sent, user_id, count, imsi = f
            if kind == "sms_deliver_status":
                code = status
                canon = (
                    "DELIVERED"
                    if code < 32
                    else "SENT"
                    if code < 64
                    else "UNDELIVERED"
                    if code < 96
                    else "EXPIRED"
                    if code < 128
                    else "UNDELIVERED"
                )
                items.append(
                    {
                        "port": port,
                        "number": number,
                        "time": sent,
                        "ref_id": ref_id,
                        "status_code": code,
                        "imsi": imsi,
                    }
                )
            else:
                canon = {
                    "SENDING": "PENDING",
                    "SENT_OK": "SENT",
                    "DELIVERED": "DELIVERED",
                    "FAILED": "FAILED",
                }[status]
                item: dict[str, Any] = {"port": port}
                if with_user or kind == "query_sms_result":
                    item["user_id"] = user_id
                ok = 0 if status in ("FAILED", "SENDING") else count
                item.update(
                    number=number,
                    time=sent,
                    status=status,
                    count=count,
                    succ_count=ok,
                    ref_id=ref_id,
                    imsi=imsi,
                )
                items.append(item)
            seen.append((msg, canon))
        if kind == "query_sms_result":
            body = _dumps({"error_code": 200, "sn": sn, "result": items})
            endpoint = "query_sms_result"
        else:
            body = _dumps({"sn": sn, kind: items})
            endpoint = "push"
        proto = Proto("ultiroam", kind, endpoint, body, seen, account=sn, tz=tz)
        if kind != "query_sms_result" and rng.random() < 0.05:  # the gateway pushed it twice
            self._schedule(rng.randint(1_000, 60_000), proto)
            self.truth.retried_bodies += 1
        return proto

    def _ultiroam_new(self, gateway: int, kind: str) -> Any:
        """A new message's first report, with its later reports scheduled."""
        rng = self.rng
        msg, f = self._ultiroam_msg(gateway)
        later = self._later
        x = rng.random()
        if x < 0.05:
            first = "FAILED"
        elif x < 0.10:
            first = "SENDING"
            later(
                f"ultiroam.{'sms_result' if rng.random() < 0.7 else 'query_sms_result'}.{gateway}",
                rng.randint(2_000, 30_000),
                (msg, f, "SENT_OK", rng.random() < 0.7),
            )
        else:
            first = "SENT_OK"
        if first != "FAILED":
            delay = rng.randint(3_000, 240_000)
            y = rng.random()
            deliver = f"ultiroam.sms_deliver_status.{gateway}"
            result = f"ultiroam.sms_result.{gateway}"
            if y < 0.45:
                later(deliver, delay, (msg, f, 0, False))
            elif y < 0.68:
                later(result, delay, (msg, f, "DELIVERED", rng.random() < 0.7))
            elif y < 0.76:  # both forms report the delivery: the second is a duplicate
                later(deliver, delay, (msg, f, 0, False))
                later(result, delay + rng.randint(500, 20_000), (msg, f, "DELIVERED", False))
            elif y < 0.80:
                later(deliver, delay, (msg, f, (65, 69, 70, 86)[rng.randrange(4)], False))
            elif y < 0.82:
                later(deliver, delay, (msg, f, (96, 97, 98)[rng.randrange(3)], False))
            elif y < 0.83:  # a report that the SMSC is still trying: SENT again
                later(deliver, delay, (msg, f, 32 + rng.randrange(4), False))
                later(deliver, delay + 60_000, (msg, f, 0, False))
            if first == "SENT_OK" and y < 0.68 and rng.random() < 0.06:
                # The SENT_OK report goes astray and turns up in a poll after the delivery
                # report: a late SENT after DELIVERED, stale. This message's first report is
                # lost, so another message's first report stands in.
                late = (msg, f, "SENT_OK", True)
                due = delay + rng.randint(30_000, 300_000)
                later(f"ultiroam.query_sms_result.{gateway}", due, late)
                return self._ultiroam_new(gateway, kind)
        report = (msg, f, first, rng.random() < 0.7)
        if kind != "query_sms_result" and rng.random() < 0.08:  # seen again by a poll
            later(f"ultiroam.query_sms_result.{gateway}", rng.randint(5_000, 60_000), report)
        return report
