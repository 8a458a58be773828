"""Tencent bodies: SendSms results, callback arrays, PullSmsSendStatus pages."""

from __future__ import annotations

from typing import Final

from benchmarks.generators.stream import Stream
from benchmarks.generators.truth import Msg, Proto, Seen
from benchmarks.generators.values import _batch, _cumulative, _dumps, _phone, _pick, local_text


class TencentGenerator(Stream):
    """Tencent Cloud SMS bodies."""

    _TENCENT_FINALS: Final = _cumulative(
        (("SUCCESS", "DELIVRD", "用户短信送达成功", "DELIVERED"), 88.0),
        (("FAIL", "UNDELIV", "用户停机", "UNDELIVERED"), 2.5),
        (("FAIL", "EXPIRED", "短信过期", "EXPIRED"), 2.0),
        (("FAIL", "REJECTD", "运营商拒收", "REJECTED"), 1.0),
        (("FAIL", "DELETED", "短信被删除", "DELETED"), 0.3),
        (("FAIL", "SUBFAIL", "提交失败", "FAILED"), 0.4),
        (("FAIL", "COMFAIL", "通信失败", "FAILED"), 0.3),
        (("FAIL", "WTNFAIL", "等待失败", "FAILED"), 0.2),
        (("FAIL", "MK:0001", "空号", "UNDELIVERED"), 1.3),
        (("FAIL", "DB:0103", "运营商内部错误", "UNDELIVERED"), 1.0),
        (("FAIL", "MSBLACK", "黑名单", "UNDELIVERED"), 0.5),
        (("UNKNOWN", "UNKNOWN", "状态未知", "UNKNOWN"), 2.5),
    )
    _TENCENT_COUNTRIES: Final = _cumulative(
        ("CN", 72.0), ("US", 8.0), ("FR", 6.0), ("IN", 6.0), ("BR", 4.0), ("DE", 4.0)
    )

    def _request_id(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _tencent(self, cap: int) -> Proto | None:
        rng = self.rng
        x = rng.random()
        channel = "SendSms" if x < 0.28 else "callback" if x < 0.68 else "PullSmsSendStatus"
        app = self.tencent_apps[rng.randrange(2)]
        if channel == "SendSms":
            return self._tencent_send(
                min(rng.randint(1, 50) if rng.random() < 0.7 else 1, cap), app
            )
        n = _batch(rng, cap)
        reports = []
        if channel == "PullSmsSendStatus" and rng.random() < 0.1:
            reports = self.last_page.get("tencent", [])[-rng.randint(1, 10) :][:n]
        reports += self._q(f"tencent.{channel}").take(self.now, n - len(reports))
        if not reports and channel == "callback":
            return self._tencent_send(min(rng.randint(1, 50), cap), app)
        seen: Seen = []
        if channel == "callback":
            items = []
            for msg, f, result, when, _ in reports:
                serial, cc, nsn, ctx, _fee, callback_mobile = f
                status, code, prose, canon = result
                items.append(
                    {
                        "user_receive_time": local_text(when, "Asia/Shanghai"),
                        "nationcode": cc,
                        "mobile": callback_mobile,
                        "report_status": status,
                        "errmsg": code,
                        "description": prose,
                        "sid": serial,
                    }
                )
                seen.append((msg, canon))
            proto = Proto("tencent", "callback", "callback", _dumps(items), seen, account=app)
            if rng.random() < 0.04:  # no timely 200 from us: Tencent calls back again
                self._schedule(rng.randint(5_000, 60_000), proto)
                self.truth.retried_bodies += 1
            return proto
        self.last_page["tencent"] = reports
        items = []
        for msg, f, result, when, uses_code in reports:
            serial, cc, nsn, ctx, _fee, _ = f
            status, code, prose, canon = result
            if not uses_code and status == "FAIL":
                canon = "UNDELIVERED"  # prose is no code: a FAIL without one is UNDELIVERED
            items.append(
                {
                    "UserReceiveTime": when,
                    "CountryCode": cc,
                    "SubscriberNumber": nsn,
                    "PhoneNumber": f"+{cc}{nsn}",
                    "SerialNo": serial,
                    "ReportStatus": status,
                    "Description": code if uses_code else prose,
                    "SessionContext": ctx,
                }
            )
            seen.append((msg, canon))
        body = _dumps(
            {"Response": {"PullSmsSendStatusSet": items, "RequestId": self._request_id()}}
        )
        return Proto("tencent", "PullSmsSendStatus", "PullSmsSendStatus", body, seen, account=app)

    _TENCENT_SEND_ERRORS: Final = (
        (
            "LimitExceeded.PhoneNumberDailyLimit",
            "the number of SMS messages sent from a single mobile number every day exceeds "
            "the upper limit",
        ),
        ("InvalidParameterValue.IncorrectPhoneNumber", "invalid mobile number"),
        ("FailedOperation.InsufficientBalanceInSmsPackage", "insufficient balance in SMS package"),
        ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verification failed"),
    )

    def _tencent_send(self, n: int, app: str) -> Proto | None:
        rng = self.rng
        items = []
        seen: Seen = []
        request_id = self._request_id()
        ctx = "" if rng.random() < 0.5 else f"order-{rng.randrange(10**8)}"
        fee = 1 if rng.random() < 0.8 else 2
        late = rng.random() < 0.01  # the ingress lands this answer minutes late
        numbers: list[str] = []
        for _ in range(n):
            cc, nsn = _phone(rng, _pick(rng, self._TENCENT_COUNTRIES))
            if nsn in numbers:
                continue
            numbers.append(nsn)
            msg = Msg()
            if rng.random() < 0.04:
                code, message = self._TENCENT_SEND_ERRORS[rng.randrange(4)]
                items.append(
                    {
                        "SerialNo": "",
                        "PhoneNumber": f"+{cc}{nsn}",
                        "Fee": 0,
                        "SessionContext": ctx,
                        "Code": code,
                        "Message": message,
                        "IsoCode": "CN" if cc == "86" else "DEF",
                    }
                )
                seen.append((msg, "FAILED"))
                continue
            serial = f"{rng.randint(2000, 5000)}:{rng.getrandbits(90)}"
            callback_mobile = f"0{nsn}" if cc == "33" and rng.random() < 0.5 else nsn
            f = (serial, cc, nsn, ctx, fee, callback_mobile)
            items.append(
                {
                    "SerialNo": serial,
                    "PhoneNumber": f"+{cc}{nsn}",
                    "Fee": fee,
                    "SessionContext": ctx,
                    "Code": "Ok",
                    "Message": "send success",
                    "IsoCode": "CN" if cc == "86" else "DEF",
                }
            )
            seen.append((msg, "PENDING"))
            if rng.random() < 0.96:
                result = _pick(rng, self._TENCENT_FINALS)
                delay = rng.randint(3_000, 180_000)
                when = self.now // 1000 + delay // 1000
                report = (msg, f, result, when, rng.random() < 0.65)
                x = rng.random()
                if x < 0.6:
                    self._later("tencent.callback", delay, report)
                else:
                    self._later("tencent.PullSmsSendStatus", delay + rng.randint(0, 60_000), report)
                if rng.random() < 0.12:  # both: pulled and called back
                    other = "tencent.PullSmsSendStatus" if x < 0.6 else "tencent.callback"
                    self._later(other, delay + rng.randint(1_000, 120_000), report)
                if result[0] == "UNKNOWN" and rng.random() < 0.5:
                    final = (msg, f, self._TENCENT_FINALS[0][0], when + 60, True)
                    self._later("tencent.callback", delay + rng.randint(60_000, 600_000), final)
        body = _dumps({"Response": {"SendStatusSet": items, "RequestId": request_id}})
        proto = Proto("tencent", "SendSms", "SendSms", body, seen, account=app)
        if late:
            self._schedule(rng.randint(120_000, 600_000), proto)
            self.truth.delayed_bodies += 1
            return None
        return proto
