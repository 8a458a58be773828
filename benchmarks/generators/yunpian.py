"""Yunpian bodies: push only (form-encoded JSON, PHP-style and double-encoded variants)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote_plus

from benchmarks.generators.stream import Stream
from benchmarks.generators.truth import Msg, Proto, Seen
from benchmarks.generators.values import (
    _batch,
    _cumulative,
    _dumps,
    _dumps_ascii,
    _phone,
    _pick,
    local_text,
)


class YunpianGenerator(Stream):
    """Yunpian push bodies."""

    def _yunpian_msg(self) -> tuple[Msg, Any]:
        rng = self.rng
        self.sid += rng.randint(1, 40)
        sid: int | str = self.sid if rng.random() < 0.9 else str(self.sid)
        uid = (
            None if rng.random() < 0.3 else f"{'abcdefgh'[rng.randrange(8)]}{rng.randrange(10**6)}"
        )
        x = rng.random()
        if x < 0.78:
            cc, nsn = _phone(rng, "CN")
            mobile = nsn
        elif x < 0.82:
            cc, nsn = _phone(rng, "CN")
            mobile = f"+{cc}{nsn}"
        else:
            cc, nsn = _phone(rng, ("AF", "US", "GB", "IN", "DE")[rng.randrange(5)])
            mobile = f"+{cc}{nsn}"
        return Msg(), (sid, uid, mobile)

    _YUNPIAN_RESULTS: Final = _cumulative(
        (("SUCCESS", "DELIVRD", "接收成功", "DELIVERED"), 85.0),
        (("FAIL", "UNDELIV", "用户停机", "UNDELIVERED"), 4.0),
        (("FAIL", "EXPIRED", "短信过期", "EXPIRED"), 2.5),
        (("FAIL", "REJECTD", "用户拒收", "REJECTED"), 1.5),
        (("FAIL", "MK:0001", "空号", "UNDELIVERED"), 1.5),
        (("FAIL", "DB:0103", "运营商错误", "UNDELIVERED"), 1.0),
        (("FAIL", "MSBLACK", "黑名单", "UNDELIVERED"), 1.0),
        (("UNKNOWN", "", "状态未知", "UNKNOWN"), 3.5),
    )

    def _yunpian(self, cap: int) -> Proto:
        rng = self.rng
        n = _batch(rng, cap)
        q = self._q("yunpian")
        reports = q.take(self.now, n)
        now_s = self.now // 1000
        while len(reports) < n:
            msg, fields = self._yunpian_msg()
            result = _pick(rng, self._YUNPIAN_RESULTS)
            report = (msg, fields, result, now_s - rng.randint(1, 90))
            reports.append(report)
            if result[0] == "UNKNOWN" and rng.random() < 0.6:  # the real final follows
                final = _pick(rng, self._YUNPIAN_RESULTS[:2])
                self._later(
                    "yunpian", rng.randint(30_000, 900_000), (msg, fields, final, now_s + 60)
                )
        items = []
        seen: Seen = []
        for msg, (sid, uid, mobile), (status, code, detail, canon), when in reports:
            items.append(
                {
                    "error_detail": detail,
                    "sid": sid,
                    "uid": uid,
                    "user_receive_time": local_text(when, "Asia/Shanghai"),
                    "error_msg": code,
                    "mobile": mobile,
                    "report_status": status,
                }
            )
            seen.append((msg, canon))
        double = rng.random() < 0.15
        body = _yunpian_body(items, rng.random() < 0.3, double)
        proto = Proto(
            "yunpian",
            "push_double" if double else "push",
            "push",
            body,
            seen,
            ctype="application/x-www-form-urlencoded;charset=utf-8",
        )
        # "We will try to re-push every 5 minutes if it is failed. Up to 3 times will push."
        if rng.random() < 0.08:
            retries = 1 if rng.random() < 0.7 else rng.randint(2, 3)
            for k in range(1, retries + 1):
                self._schedule(300_000 * k + rng.randrange(5000), proto)
                self.truth.retried_bodies += 1
        return proto


def _yunpian_body(items: Any, php: bool, double: bool) -> bytes:
    text = (_dumps_ascii(items) if php else _dumps(items)).decode()
    value = quote_plus(text)
    if double:
        value = quote_plus(value)
    return b"sms_status=" + value.encode()
