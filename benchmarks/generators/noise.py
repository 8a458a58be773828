"""Bodies that are not receipts and bodies that are malformed, for every provider."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Final

from benchmarks.generators.smspartner import _smspartner_xml
from benchmarks.generators.stream import Stream
from benchmarks.generators.truth import NON_RECEIPT_KINDS, Proto
from benchmarks.generators.values import _cumulative, _dumps, _phone, _pick, local_text
from benchmarks.generators.yunpian import _yunpian_body


class NoiseGenerator(Stream):
    """Non-receipt, malformed and provider-error bodies."""

    if TYPE_CHECKING:
        # TencentGenerator's, composed with this one in benchmarks.corpus.Generator.
        def _request_id(self) -> str: ...

    def _non_receipt(self) -> Proto:
        rng = self.rng
        kind = NON_RECEIPT_KINDS[rng.randrange(len(NON_RECEIPT_KINDS))]
        now_s = self.now // 1000
        if kind == "uspeedo.inbound":
            body = _dumps(
                {
                    "MsgType": 0,
                    "Data": {
                        "Phone": f"86{_phone(rng, 'CN')[1]}",
                        "Content": "TD",
                        "ReceiveTime": now_s,
                    },
                }
            )
            return Proto("uspeedo", kind, "push", body, [], kind="non_receipt")
        if kind in ("ultiroam.sms", "ultiroam.ussd"):
            sn, tz = self.ultiroam_gateways[rng.randrange(len(self.ultiroam_gateways))]
            if kind == "ultiroam.sms":
                items = [
                    {
                        "port": rng.randrange(32),
                        "number": f"+86{_phone(rng, 'CN')[1]}",
                        "time": local_text(now_s, tz or "UTC"),
                        "text": "Your code is 4711",
                        "imsi": "460004642148063",
                    }
                ]
            else:
                items = [
                    {
                        "port": rng.randrange(32),
                        "text": "Balance: 12.50 CNY",
                        "imsi": "460004642148063",
                    }
                ]
            body = _dumps({"sn": sn, kind.split(".")[1]: items})
            return Proto("ultiroam", kind, "push", body, [], kind="non_receipt", account=sn, tz=tz)
        app = self.tencent_apps[0]
        if kind == "tencent.reply":
            cc, nsn = _phone(rng, "CN")
            reply = {
                "ExtendCode": "01",
                "CountryCode": cc,
                "PhoneNumber": f"+{cc}{nsn}",
                "SignName": "腾讯云",
                "ReplyContent": "退订",
                "ReplyTime": now_s,
                "SubscriberNumber": nsn,
            }
            body = _dumps(
                {"Response": {"PullSmsReplyStatusSet": [reply], "RequestId": self._request_id()}}
            )
            return Proto(
                "tencent", kind, "PullSmsReplyStatus", body, [], kind="non_receipt", account=app
            )
        if kind == "tencent.reply_callback":
            cc, nsn = _phone(rng, "CN")
            body = _dumps(
                [
                    {
                        "extend": "01",
                        "mobile": nsn,
                        "nationcode": cc,
                        "sign": "腾讯云",
                        "text": "退订",
                        "time": now_s,
                    }
                ]
            )
            return Proto("tencent", kind, "callback", body, [], kind="non_receipt", account=app)
        if rng.random() < 0.5:
            stats = {"FeeCount": 120, "RequestCount": 100, "RequestSuccessCount": 98}
            body = _dumps(
                {"Response": {"SendStatusStatistics": stats, "RequestId": self._request_id()}}
            )
            endpoint = "SendStatusStatistics"
        else:
            stats = {
                "CallbackCount": 98,
                "RequestSuccessCount": 98,
                "CallbackFailCount": 3,
                "CallbackSuccessCount": 95,
                "InternalErrorCount": 0,
                "InvalidNumberCount": 1,
                "ShutdownErrorCount": 1,
                "BlackListCount": 1,
                "FrequencyLimitCount": 0,
            }
            body = _dumps(
                {"Response": {"CallbackStatusStatistics": stats, "RequestId": self._request_id()}}
            )
            endpoint = "CallbackStatusStatistics"
        return Proto(
            "tencent", "tencent.statistics", endpoint, body, [], kind="non_receipt", account=app
        )

    def _sample(self, provider: str) -> tuple[str, Any, str]:
        """A small valid body's object (not tracked by the truth) for a malformed variant:
        (endpoint, object, list key path) where the object is JSON-able."""
        rng = self.rng
        now_s = self.now // 1000
        cc, nsn = _phone(rng, "CN")
        if provider == "uspeedo":
            item = {
                "CostCount": 1,
                "ReceiptTime": now_s,
                "UserId": "7",
                "ReceiptCode": "DELIVRD",
                "Phone": f"{cc}{nsn}",
                "ReceiptResult": "Success",
                "ReceiptDesc": "Success",
            }
            obj = {
                "Action": "GetUSMSSendReceiptResponse",
                "Data": [{"SessionNo": "Zq81xWcT9", "ReceiptSet": [item, dict(item)]}],
                "RetCode": 0,
            }
            return "GetUSMSSendReceipt", obj, "Phone"
        if provider == "ultiroam":
            sn = self.ultiroam_gateways[0][0]
            item = {
                "port": 3,
                "user_id": 9,
                "number": f"+{cc}{nsn}",
                "time": local_text(now_s, "Asia/Shanghai"),
                "status": "SENT_OK",
                "count": 1,
                "succ_count": 1,
                "ref_id": 17,
                "imsi": "460004642148063",
            }
            return (
                "query_sms_result",
                {"error_code": 200, "sn": sn, "result": [item, dict(item)]},
                "number",
            )
        if provider == "yunpian":
            item = {
                "error_detail": "接收成功",
                "sid": 9527,
                "uid": "abc",
                "user_receive_time": local_text(now_s, "Asia/Shanghai"),
                "error_msg": "DELIVRD",
                "mobile": nsn,
                "report_status": "SUCCESS",
            }
            return "push", [item, dict(item)], "mobile"
        if provider == "smspartner":
            item = {
                "phoneNumber": f"+33{_phone(rng, 'FR')[1]}",
                "status": "Delivered",
                "stopSMS": False,
                "date": str(now_s),
            }
            return (
                "bulk-status",
                {
                    "success": True,
                    "code": 200,
                    "message_id": "300",
                    "StatutResponse_List": [item, dict(item)],
                },
                "phoneNumber",
            )
        item = {
            "UserReceiveTime": now_s,
            "CountryCode": cc,
            "SubscriberNumber": nsn,
            "PhoneNumber": f"+{cc}{nsn}",
            "SerialNo": "2640:1503391210917236400210591173",
            "ReportStatus": "SUCCESS",
            "Description": "DELIVRD",
            "SessionContext": "",
        }
        return (
            "PullSmsSendStatus",
            {
                "Response": {
                    "PullSmsSendStatusSet": [item, dict(item)],
                    "RequestId": self._request_id(),
                }
            },
            "PhoneNumber",
        )

    def _malformed(self) -> Proto:
        rng = self.rng
        kind = _pick(rng, _MALFORMED_WEIGHTS)
        provider = ("uspeedo", "ultiroam", "yunpian", "smspartner", "tencent")[rng.randrange(5)]
        if kind == "entity_bomb":
            return Proto(
                "smspartner",
                kind,
                "bulk-status",
                ENTITY_BOMB,
                [],
                kind=kind,
                ctype="application/xml",
            )
        if kind == "garbage":
            body = (b"", b"<html><body><h1>502 Bad Gateway</h1></body></html>", b"OK", b"null")[
                rng.randrange(4)
            ]
            return Proto(
                provider,
                kind,
                "push" if provider in ("yunpian", "uspeedo") else "poll",
                body,
                [],
                kind=kind,
            )
        if kind == "provider_error":
            return self._provider_error()
        endpoint, obj, phone_key = self._sample(provider)
        ctype = "application/json"
        if kind == "wrong_type":
            _wrong_type(rng, obj, phone_key)
        if kind == "invalid_utf8":
            _set_phone(obj, phone_key, "INVALIDUTF8MARKER")
        if provider == "yunpian":
            ctype = "application/x-www-form-urlencoded"
            body = _yunpian_body(obj, False, False)
        elif provider == "smspartner" and kind == "truncated" and rng.random() < 0.5:
            rows = [
                (i["phoneNumber"], i["status"], i["stopSMS"], i["date"])
                for i in obj["StatutResponse_List"]
            ]
            body = _smspartner_xml(obj["message_id"], rows, rng.random() < 0.5)
            ctype = "application/xml"
        else:
            body = _dumps(obj)
        if kind == "invalid_utf8":
            bad = b"%FF%FE" if provider == "yunpian" and rng.random() < 0.5 else b"\xff\xfe"
            body = body.replace(b"INVALIDUTF8MARKER", bad + b"138")
        elif kind == "truncated":
            body = body[: rng.randint(1, len(body) - 2)]
        return Proto(provider, kind, endpoint, body, [], kind=kind, ctype=ctype)

    def _provider_error(self) -> Proto:
        rng = self.rng
        provider = ("uspeedo", "ultiroam", "smspartner", "smspartner", "tencent")[rng.randrange(5)]
        if provider == "uspeedo":
            body = _dumps(
                {
                    "Action": "GetUSMSSendReceiptResponse",
                    "Message": "Missing params 'SessionNoSet'",
                    "RetCode": 215397,
                }
            )
            return Proto(
                provider, "provider_error", "GetUSMSSendReceipt", body, [], kind="provider_error"
            )
        if provider == "ultiroam":
            sn = self.ultiroam_gateways[0][0]
            body = _dumps({"error_code": (400, 413, 500)[rng.randrange(3)], "sn": sn})
            return Proto(
                provider,
                "provider_error",
                "query_sms_result",
                body,
                [],
                kind="provider_error",
                account=sn,
            )
        if provider == "smspartner":
            code, text = (
                (1, "La clé API est requise"),
                (3, "L'ID du message est requis"),
                (4, "Message non trouvé"),
                (10, "Clé API incorrecte"),
            )[rng.randrange(4)]
            if rng.random() < 0.5:
                body = _dumps({"success": False, "code": code, "message": text})
                return Proto(
                    provider, "provider_error", "bulk-status", body, [], kind="provider_error"
                )
            body = (
                "<?xml version='1.0' encoding='UTF-8'?>\n<result>\n<entry>false</entry>\n"
                f"<entry>{code}</entry>\n"
                f"<entry>{text}</entry>\n</result>"
            ).encode()
            return Proto(
                provider,
                "provider_error",
                "bulk-status",
                body,
                [],
                kind="provider_error",
                ctype="application/xml",
            )
        body = _dumps(
            {
                "Response": {
                    "Error": {
                        "Code": "AuthFailure.SignatureFailure",
                        "Message": "The provided credentials could not be validated. "
                        "Please check your signature is correct.",
                    },
                    "RequestId": self._request_id(),
                }
            }
        )
        return Proto(
            provider, "provider_error", "PullSmsSendStatus", body, [], kind="provider_error"
        )


_MALFORMED_WEIGHTS: Final = _cumulative(
    ("truncated", 35.0),
    ("invalid_utf8", 15.0),
    ("wrong_type", 20.0),
    ("provider_error", 22.0),
    ("entity_bomb", 4.0),
    ("garbage", 4.0),
)

ENTITY_BOMB: Final = (
    b'<?xml version="1.0"?>\n<!DOCTYPE result [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n'
        % (i, b"".join(b"&lol%s;" % (b"" if i == 1 else str(i - 1).encode()) for _ in range(10)))
        for i in range(1, 10)
    )
    + b"]>\n<result><entry>true</entry><entry>200</entry><entry>&lol9;</entry></result>"
)


def _set_phone(obj: Any, key: str, value: Any) -> None:
    """Set `key` of the first report of a sample object."""
    _reports(obj)[0][key] = value


def _reports(obj: Any) -> list[Any]:
    if isinstance(obj, list):
        return obj
    if "Response" in obj:
        return obj["Response"]["PullSmsSendStatusSet"]  # type: ignore[no-any-return]
    if "Data" in obj:
        return obj["Data"][0]["ReceiptSet"]  # type: ignore[no-any-return]
    if "result" in obj:
        return obj["result"]  # type: ignore[no-any-return]
    return obj["StatutResponse_List"]  # type: ignore[no-any-return]


def _wrong_type(rng: random.Random, obj: Any, phone_key: str) -> None:
    """One of: the report list is a string, every report is a number, every phone number is a
    number. Every report is wrong, so the body is dead-lettered whole (one bad report among good
    ones is a PartialBody, tested in tests/pipeline/test_hostile.py)."""
    x = rng.randrange(3)
    reports = _reports(obj)
    if x == 0:
        for report in reports:
            report[phone_key] = 8613800138000
    elif x == 1:
        reports[:] = [42] * len(reports)
    elif isinstance(obj, list):
        obj[:] = [{"sms_status": "none"}, "oops"]  # not a report, and a string in the list
    elif "Response" in obj:
        obj["Response"]["PullSmsSendStatusSet"] = "none"
    elif "Data" in obj:
        obj["Data"] = "none"
    elif "result" in obj:
        obj["result"] = "none"
    else:
        obj["StatutResponse_List"] = "none"
