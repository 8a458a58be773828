"""uSpeedo bodies: GetUSMSSendReceipt poll, MsgType 2 push, bare array."""

from __future__ import annotations

from typing import Any, Final

from benchmarks.generators.stream import Stream
from benchmarks.generators.truth import Msg, Proto, Seen
from benchmarks.generators.values import _batch, _cumulative, _dumps, _phone, _pick


class UspeedoGenerator(Stream):
    """uSpeedo poll and push bodies."""

    _USPEEDO_RESULTS: Final = _cumulative(
        (("Success", "DELIVRD", "Success", "DELIVERED"), 74.0),
        (("success", "DELIVRD", "success", "DELIVERED"), 2.0),
        (("SUCCESS", "DELIVRD", "SUCCESS", "DELIVERED"), 1.0),
        (("发送成功", "DELIVRD", "发送成功", "DELIVERED"), 5.0),
        (("Sent successfully", "DELIVRD", "Sent successfully", "DELIVERED"), 3.0),
        (("Fail", "UNDELIV", "Fail", "UNDELIVERED"), 3.5),
        (("Fail", "EXPIRED", "Expired", "EXPIRED"), 2.0),
        (("Fail", "REJECTD", "Rejected", "REJECTED"), 1.5),
        (("发送失败", "MK:0001", "发送失败", "UNDELIVERED"), 1.0),
        (("Sending failed", "DB:0103", "Sending failed", "UNDELIVERED"), 1.0),
        (("Unknow", "UNKNOWN", "Unknow", "UNKNOWN"), 2.5),
        (("状态未知", "UNKNOWN", "状态未知", "UNKNOWN"), 0.5),
        (("Unknown state", "UNKNOWN", "Unknown state", "UNKNOWN"), 0.5),
        (("SubmitFail", "SUBFAIL", "Submit failed", "FAILED"), 1.5),
    )
    _USPEEDO_COUNTRIES: Final = _cumulative(
        ("CN", 30.0),
        ("IN", 15.0),
        ("US", 15.0),
        ("BR", 10.0),
        ("DE", 10.0),
        ("FR", 10.0),
        ("GB", 5.0),
        ("AF", 5.0),
    )

    def _uspeedo_recipient(self) -> tuple[Msg, Any]:
        if not self.uspeedo_open:
            rng = self.rng
            session = "".join(
                rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                for _ in range(8)
            )
            session += str(self._uid())  # unique, as the provider guarantees
            account = self.uspeedo_accounts[rng.randrange(3)]
            x = rng.random()
            size = 1 if x < 0.7 else rng.randint(2, 10) if x < 0.95 else rng.randint(11, 50)
            user_id = "" if rng.random() < 0.2 else str(rng.randrange(10**6))
            phones: list[tuple[str, str]] = []
            for _ in range(size):
                phone = _phone(rng, _pick(rng, self._USPEEDO_COUNTRIES))
                if phone not in phones:
                    phones.append(phone)
            for cc, nsn in phones:
                style = rng.random()  # < 0.85 country code without +; < 0.95 CountryCode; else +
                self.uspeedo_open.append(
                    (Msg(), (session, account, cc, nsn, style, user_id, rng.randint(1, 3)))
                )
        return self.uspeedo_open.pop()

    def _uspeedo(self, cap: int) -> Proto:
        rng = self.rng
        x = rng.random()
        channel = "poll" if x < 0.45 else "push"
        n = _batch(rng, cap)
        q = self._q(f"uspeedo.{channel}")
        reports = []
        if channel == "poll" and rng.random() < 0.12:  # a page overlapping the previous one
            reports = self.last_page.get("uspeedo", [])[-rng.randint(1, 10) :][:n]
        reports += q.take(self.now, n - len(reports))
        now_s = self.now // 1000
        while len(reports) < n:
            msg, fields = self._uspeedo_recipient()
            result = _pick(rng, self._USPEEDO_RESULTS)
            report = (msg, fields, result, now_s - rng.randint(1, 120))
            reports.append(report)
            if result[3] == "UNKNOWN" and rng.random() < 0.6:
                final = (msg, fields, _pick(rng, self._USPEEDO_RESULTS[:6]), now_s + 30)
                self._later(
                    f"uspeedo.{'push' if rng.random() < 0.5 else 'poll'}",
                    rng.randint(20_000, 600_000),
                    final,
                )
            elif result[3] != "UNKNOWN" and rng.random() < 0.006:  # a late, stale Unknow
                stale = (msg, fields, self._USPEEDO_RESULTS[10][0], now_s - 200)
                self._later("uspeedo.poll", rng.randint(20_000, 600_000), stale)
            other = "poll" if channel == "push" else "push"
            if rng.random() < (0.10 if channel == "push" else 0.05):  # same report, other channel
                self._later(f"uspeedo.{other}", rng.randint(10_000, 300_000), report)
        seen: Seen = []
        account = None
        if channel == "poll":
            self.last_page["uspeedo"] = reports
            sessions: dict[str, list[dict[str, Any]]] = {}
            for _msg, (session, acct, cc, nsn, style, user_id, cost), result, when in reports:
                item = {
                    "CostCount": cost,
                    "ReceiptTime": when,
                    "UserId": user_id,
                    "ReceiptCode": result[1],
                    "Phone": _uspeedo_phone(cc, nsn, style),
                    "ReceiptResult": result[0],
                    "ReceiptDesc": result[2],
                }
                if 0.85 <= style < 0.95:
                    item["CountryCode"] = cc
                sessions.setdefault(session, []).append(item)
                account = acct
            order = {s: i for i, s in enumerate(sessions)}
            for msg, _fields, result, _ in sorted(reports, key=lambda r: order[r[1][0]]):
                seen.append((msg, result[3]))
            data = [{"SessionNo": s, "ReceiptSet": items} for s, items in sessions.items()]
            body = _dumps({"Action": "GetUSMSSendReceiptResponse", "Data": data, "RetCode": 0})
            return Proto("uspeedo", "poll", "GetUSMSSendReceipt", body, seen, account=account)
        items = []
        for msg, (session, acct, cc, nsn, style, user_id, cost), result, when in reports:
            items.append(
                {
                    "SessionNo": session,
                    "Phone": f"+{cc}{nsn}" if style >= 0.95 else f"{cc}{nsn}",
                    "CostCount": cost,
                    "ReceiptTime": when,
                    "ReceiptResult": result[0],
                    "ReceiptCode": result[1],
                    "ReceiptDesc": result[2],
                    "UserId": user_id,
                }
            )
            seen.append((msg, result[3]))
            account = acct
        if x < 0.55:  # a bare array of the same objects
            body, fmt = _dumps(items), "push_array"
        else:
            envelope: dict[str, Any] = {"MsgType": 2, "Data": items}
            if rng.random() < 0.5 and account is not None:
                envelope["AccountId"] = int(account)
            body, fmt = _dumps(envelope), "push"
        proto = Proto("uspeedo", fmt, "push", body, seen, account=account)
        if rng.random() < 0.05:
            self._schedule(rng.randint(30_000, 120_000), proto)
            self.truth.retried_bodies += 1
        return proto


def _uspeedo_phone(cc: str, nsn: str, style: float) -> str:
    """Mostly the country code without `+`; a national number beside `CountryCode`; or E.164."""
    return f"{cc}{nsn}" if style < 0.85 else nsn if style < 0.95 else f"+{cc}{nsn}"
