"""ATOL's answers: the report (also the callback body), the accepted answer, the error table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from kkt.cloud.atol import TABLE, ApiError, accepted_json, report_json
from kkt.cloud.model import ReportView
from support.atol_examples import V4_REPORT

UUID = "2ea26f17-0884-4f08-b120-306fc096a58f"
RESULT: dict[str, Any] = {  # FiscalResult.to_json() + what the pool adds
    "document_number": 133,
    "fiscal_sign": 3449555941,
    "fn_number": "1110000100238211",
    "shift_number": 23,
    "receipt_number": 6,
    "when": "2017-04-12T20:16:00",
    "total": 159800,
    "operation": 1,
    "qr": "t=20170412T2016&s=1598.00&fn=1110000100238211&i=133&fp=3449555941&n=1",
    "replayed": False,
    "rnm": "0000111118041361",
    "fns_site": "www.nalog.ru",
    "ofd_inn": "7704358518",
    "device_code": "KSR13.00-1-11",
}


def view(**changes: Any) -> ReportView:
    fields: dict[str, Any] = {
        "uuid": UUID,
        "api": 4,
        "group": "MyCompany_MyShop",
        "operation": "sell",
        "external_id": "TRF10601_1",
        "status": "done",
        "accepted_at": datetime(2017, 4, 12, 20, 15, 0),
        "done_at": datetime(2017, 4, 12, 20, 15, 8),
        "callback_url": None,
        "result": RESULT,
        "error": None,
        "register": "KSR13.00-1-11",
        "ofd": "acknowledged",
    }
    return ReportView(**(fields | changes))


def test_done_report_has_atols_shape_and_values() -> None:
    report = report_json(view(), daemon_code="prod-agent-1")
    expected = json.loads(V4_REPORT)
    assert report.pop("ofd") == {"status": "acknowledged"}  # our extension, done only
    assert report == expected
    assert json.loads(json.dumps(report)) == expected  # plain JSON types only


def test_v5_payload_adds_ofd_inn_and_fractional_total() -> None:
    result = RESULT | {"total": 11998}
    payload = report_json(view(api=5, result=result))["payload"]
    assert payload["ofd_inn"] == "7704358518"
    assert payload["total"] == 119.98 and json.dumps(payload["total"]) == "119.98"
    assert "ofd_inn" not in report_json(view())["payload"]


def test_wait_report_has_no_error_and_no_payload() -> None:
    report = report_json(view(status="wait", done_at=None, result=None, register=None, ofd=None))
    assert report["status"] == "wait"
    assert report["error"] is None and report["payload"] is None
    assert report["timestamp"] == "12.04.2017 20:15:00"
    assert report["device_code"] == "" and "ofd" not in report
    assert report["callback_url"] == ""


def test_fail_report_carries_the_error_with_a_stable_id() -> None:
    failed = view(
        status="fail",
        result=None,
        ofd=None,
        error={"code": -3803, "text": "bad price", "type": "driver"},
        callback_url="http://shop/cb",
    )
    report = report_json(failed)
    error = report["error"]
    assert {k: error[k] for k in ("code", "text", "type")} == {
        "code": -3803,
        "text": "bad price",
        "type": "driver",
    }
    assert error["error_id"] == report_json(failed)["error"]["error_id"]
    assert report["payload"] is None and report["callback_url"] == "http://shop/cb"


def test_accepted_answer() -> None:
    assert accepted_json(UUID, datetime(2017, 4, 12, 6, 15, 6)) == {
        "uuid": UUID,
        "timestamp": "12.04.2017 06:15:06",
        "error": None,
        "status": "wait",
    }


EXPECTED_TABLE = {
    0: ("Undefined", 400),
    1: ("IncomingChequeProcessingFailed", 400),
    10: ("MissingToken", 401),
    11: ("ExpiredToken", 401),
    12: ("WrongLoginOrPassword", 401),
    13: ("ValidationException", 400),
    20: ("GroupCodeAndTokenDontMatch", 401),
    21: ("NotSupportedGroupCodeForProtocol", 401),
    30: ("MissingUuid", 400),
    31: ("IncomingOperationNotSupported", 400),
    32: ("IncomingValidationException", 400),
    33: ("IncomingExternalIdAlreadyExists", 400),
    34: ("StateCheckNotFound", 200),
    40: ("BadRequest", 400),
    41: ("UnsupportedMediaType", 415),
    50: ("ErrorServerConfiguration", 500),
}


def test_table_is_atols() -> None:
    assert {code: (row.name, row.http_status) for code, row in TABLE.items()} == EXPECTED_TABLE


@pytest.mark.parametrize(
    "error",
    [
        ApiError.undefined(),
        ApiError.incoming_cheque_processing_failed("x"),
        ApiError.missing_token(),
        ApiError.expired_token(),
        ApiError.wrong_login_or_password(),
        ApiError.validation_exception("login: is required"),
        ApiError.group_code_and_token_dont_match("g"),
        ApiError.not_supported_group_code_for_protocol("g", 5),
        ApiError.missing_uuid("u"),
        ApiError.incoming_operation_not_supported("x", ("sell",)),
        ApiError.incoming_validation_exception(["a: b"]),
        ApiError.incoming_external_id_already_exists("u", "e", "g"),
        ApiError.state_check_not_found("u"),
        ApiError.bad_request("x"),
        ApiError.unsupported_media_type("text/plain"),
        ApiError.error_server_configuration("x"),
    ],
    ids=lambda error: str(error.code),
)
def test_constructors_follow_the_table(error: ApiError) -> None:
    row = TABLE[error.code]
    assert (error.name, error.http_status, error.status) == (row.name, row.http_status, row.status)
    assert error.type == ("unknown" if error.code == 0 else "system")
    assert error.text


def test_fail_answer_shape() -> None:
    error = ApiError.incoming_validation_exception(["receipt.total: is required"])
    answer = error.json(now=datetime(2019, 2, 1, 13, 45, 0))
    assert answer == {
        "error": {
            "error_id": error.error_id,
            "code": 32,
            "text": "receipt.total: is required",
            "type": "system",
        },
        "status": "fail",
        "timestamp": "01.02.2019 13:45:00",
    }
    assert "uuid" not in answer  # a document that fails validation gets no uuid


def test_duplicate_external_id_answers_the_first_uuid_and_wait() -> None:
    atol = ApiError.incoming_external_id_already_exists("first-uuid", "ext-1", "g")
    answer = atol.json()
    assert (answer["uuid"], answer["status"], answer["error"]["code"]) == ("first-uuid", "wait", 33)
    assert atol.http_status == 400
    strict = ApiError.incoming_external_id_already_exists("u", "e", "g", http_status=409)
    assert (strict.code, strict.http_status) == (33, 409)
    assert "another operation or body" in strict.text


def test_other_error_types() -> None:
    busy = ApiError.overloaded(3)
    assert (busy.http_status, busy.headers) == (429, {"Retry-After": "3"})
    assert ApiError.timeout().type == "timeout"
    assert (ApiError.agent(2, "other INN").type, ApiError.driver(-3803, "x").code) == (
        "agent",
        -3803,
    )
    assert ApiError.driver(-3803, "x").json()["error"]["type"] == "driver"


def test_aware_times_are_shown_in_the_local_zone() -> None:
    moment = datetime(2017, 4, 12, 17, 15, 6, tzinfo=UTC)
    shown = moment.astimezone().strftime("%d.%m.%Y %H:%M:%S")
    assert accepted_json(UUID, moment)["timestamp"] == shown
    assert ApiError.missing_token().json(now=moment)["timestamp"] == shown
