"""ATOL Online's error answers: the codes, names and HTTP statuses of its table (A4 Tables 6-7;
fact sheet ``ofd-cloud-marking.md`` §2.5), as one exception the HTTP layer turns into JSON.

An `ApiError` is raised by the pure API layer (`to_order`) and by the service (auth, unknown
uuid ...); ``.json()`` is ATOL's fail answer.  The table's "status" column matters: most errors
answer ``"status": "fail"``, but 33 (the external_id exists: the answer carries the FIRST
document's uuid) and 34 (not processed yet) answer ``"wait"``, because the document they name is
alive and the client should poll it, not give up.
"""

from __future__ import annotations

import uuid as uuid_module
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ATOL_TIME = "%d.%m.%Y %H:%M:%S"  # ATOL's timestamp format, requests and answers alike


def atol_time(when: datetime) -> str:
    """``when`` in ATOL's format.  ATOL's timestamps carry no zone and read as the server's local
    time (as the register's own receipt_datetime does), so an aware time is shown in the local
    zone; a naive one is taken as already local."""
    local = when.astimezone() if when.tzinfo is not None else when
    return local.strftime(ATOL_TIME)


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """One row of ATOL's error table."""

    code: int
    name: str
    http_status: int
    status: str  # the answer's "status": "fail", or "wait" when the document lives on
    meaning: str


# code -> row.  Texts are ours (English, naming the cause and the fix); names and numbers ATOL's.
TABLE: dict[int, ErrorKind] = {
    row.code: row
    for row in (
        ErrorKind(0, "Undefined", 400, "fail", "unknown error"),
        ErrorKind(1, "IncomingChequeProcessingFailed", 400, "fail", "could not process it"),
        ErrorKind(10, "MissingToken", 401, "fail", "token missing or not recognised"),
        ErrorKind(11, "ExpiredToken", 401, "fail", "token older than 24 hours"),
        ErrorKind(12, "WrongLoginOrPassword", 401, "fail", "wrong login or password"),
        ErrorKind(13, "ValidationException", 400, "fail", "request validation failed"),
        ErrorKind(20, "GroupCodeAndTokenDontMatch", 401, "fail", "group not allowed"),
        ErrorKind(21, "NotSupportedGroupCodeForProtocol", 401, "fail", "group not on this API"),
        ErrorKind(30, "MissingUuid", 400, "fail", "bad or unknown uuid"),
        ErrorKind(31, "IncomingOperationNotSupported", 400, "fail", "unknown operation"),
        ErrorKind(32, "IncomingValidationException", 400, "fail", "document JSON invalid"),
        ErrorKind(33, "IncomingExternalIdAlreadyExists", 400, "wait", "external_id exists"),
        ErrorKind(34, "StateCheckNotFound", 200, "wait", "not processed yet"),
        ErrorKind(40, "BadRequest", 400, "fail", "malformed request"),
        ErrorKind(41, "UnsupportedMediaType", 415, "fail", "wrong Content-Type"),
        ErrorKind(50, "ErrorServerConfiguration", 500, "fail", "server configuration error"),
    )
}


class ApiError(Exception):
    """An ATOL Online error: ``code`` and ``type`` go into the answer's ``error``, ``http_status``
    is the HTTP status to answer with, ``text`` says what is wrong and how to fix it.

    ``uuid`` is set when the answer must carry a document's uuid (code 33: the first document with
    this external_id).  ``headers`` are extra HTTP headers (e.g. Retry-After on 429).
    """

    def __init__(
        self,
        code: int,
        text: str,
        *,
        http_status: int | None = None,
        type: str = "system",  # ATOL's field name
        status: str | None = None,
        uuid: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(text)
        row = TABLE.get(code) if type in ("system", "unknown") else None
        self.code = code
        self.text = text
        self.type = type
        self.name = row.name if row else ""
        self.http_status = (
            http_status if http_status is not None else (row.http_status if row else 400)
        )
        self.status = status if status is not None else (row.status if row else "fail")
        self.uuid = uuid
        self.headers = dict(headers or {})
        self.error_id = str(uuid_module.uuid4())  # ATOL gives every error answer its own id

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.text!r}, http_status={self.http_status})"

    def error_json(self) -> dict[str, Any]:
        """The ``error`` object of ATOL's answers and reports."""
        return {"error_id": self.error_id, "code": self.code, "text": self.text, "type": self.type}

    def json(self, uuid: str | None = None, *, now: datetime | None = None) -> dict[str, Any]:
        """ATOL's fail answer: ``{"uuid"?, "error": {...}, "status", "timestamp"}``.

        ``uuid`` (or the error's own, for 33) is included only when there is one: ATOL's
        validation failures have no uuid (A4 p. 10: a document that fails validation gets none).
        """
        answer: dict[str, Any] = {}
        the_uuid = uuid if uuid is not None else self.uuid
        if the_uuid is not None:
            answer["uuid"] = the_uuid
        answer["error"] = self.error_json()
        answer["status"] = self.status
        answer["timestamp"] = atol_time(now or datetime.now())
        return answer

    # -- ATOL's table, one constructor per row (names after ATOL's) -------------------------------

    @classmethod
    def undefined(cls, text: str = "unknown error") -> ApiError:
        return cls(0, text, type="unknown")

    @classmethod
    def incoming_cheque_processing_failed(cls, text: str) -> ApiError:
        return cls(1, text)

    @classmethod
    def missing_token(cls) -> ApiError:
        return cls(
            10,
            "no valid token: get one with getToken and send it in the Token header (or ?token=)",
        )

    @classmethod
    def expired_token(cls) -> ApiError:
        """11: also for a token never issued -- only hashes of live tokens are kept, so an
        unknown one and an expired one look the same."""
        return cls(11, "the token is unknown or older than 24 hours: get a new one with getToken")

    @classmethod
    def wrong_login_or_password(cls) -> ApiError:
        return cls(12, "wrong login or password")

    @classmethod
    def validation_exception(cls, text: str) -> ApiError:
        """13: the getToken request itself is invalid (not the document: that is 32)."""
        return cls(13, text)

    @classmethod
    def group_code_and_token_dont_match(cls, group: str) -> ApiError:
        return cls(20, f"this token's login may not use group {group!r}")

    @classmethod
    def not_supported_group_code_for_protocol(cls, group: str, api: int) -> ApiError:
        return cls(21, f"group {group!r} is not served on API v{api}")

    @classmethod
    def missing_uuid(cls, uuid: str) -> ApiError:
        return cls(30, f"no document with uuid {uuid!r} in this group")

    @classmethod
    def incoming_operation_not_supported(cls, operation: str, allowed: tuple[str, ...]) -> ApiError:
        return cls(
            31, f"operation {operation!r} is not supported here; use one of {', '.join(allowed)}"
        )

    @classmethod
    def incoming_validation_exception(cls, problems: list[str]) -> ApiError:
        """32: the document is invalid; ``problems`` are ``"path: what is wrong"`` lines, all of
        them (a client fixes everything in one round, not one field per request)."""
        return cls(32, "; ".join(problems) if problems else "the document is invalid")

    @classmethod
    def incoming_external_id_already_exists(
        cls,
        uuid: str,
        external_id: str,
        group: str,
        *,
        http_status: int = 400,
        key: str | None = None,
    ) -> ApiError:
        """33 with the FIRST document's uuid (status "wait": poll that uuid).  ATOL answers HTTP
        400; the service's strict mode answers 409 for a different body with the same id.
        ``key``: the request's Idempotency-Key (the first document may have matched on it)."""
        same = "" if http_status == 400 else " for another operation or body"
        named = f"external_id {external_id!r}"
        if key is not None:
            named += f" or Idempotency-Key {key!r}"
        return cls(
            33,
            f"a document with {named} exists in group {group!r}{same}: its uuid is {uuid}",
            http_status=http_status,
            uuid=uuid,
        )

    @classmethod
    def state_check_not_found(cls, uuid: str, *, http_status: int = 200) -> ApiError:
        """34; the service answers 404 for a receipt picture asked of an unfinished document
        (there is nothing to draw yet)."""
        return cls(
            34,
            "the document is not processed yet: ask again later",
            http_status=http_status,
            uuid=uuid,
        )

    @classmethod
    def bad_request(cls, text: str, *, http_status: int = 400) -> ApiError:
        """40: the request cannot be read (not UTF-8, not JSON, too large with 413 ...)."""
        return cls(40, text, http_status=http_status)

    @classmethod
    def unsupported_media_type(cls, got: str) -> ApiError:
        return cls(41, f"Content-Type must be application/json, got {got!r}")

    @classmethod
    def error_server_configuration(cls, text: str, *, http_status: int = 500) -> ApiError:
        """50; 501 where this installation lacks a part the request needs (a renderer)."""
        return cls(50, text, http_status=http_status)

    @classmethod
    def body_too_large(cls, limit: int, size: int | None = None) -> ApiError:
        """32 with HTTP 413: clients reading only ``error.code`` see an invalid document, HTTP
        says why.  ``size``: the declared length, when the client declared one."""
        told = f"the body is {size} bytes, over" if size is not None else "the body is over"
        return cls(32, f"{told} the limit of {limit} bytes: send a smaller one", http_status=413)

    # -- beyond the system table: ATOL's other error types ----------------------------------------

    @classmethod
    def overloaded(cls, retry_after: int) -> ApiError:
        """Our 429 (ATOL has no row for it): code 1, the client retries after ``retry_after`` s."""
        return cls(
            1,
            f"the queue is full: retry in {retry_after} s",
            http_status=429,
            headers={"Retry-After": str(retry_after)},
        )

    @classmethod
    def timeout(cls, text: str = "not processed within the queue time") -> ApiError:
        """Type ``timeout``, code 1: the document waited too long for a register."""
        return cls(1, text, type="timeout")

    @classmethod
    def agent(cls, code: int, text: str) -> ApiError:
        """Type ``agent``, codes 1-4 (invalid document, another INN/address, clock, doc type)."""
        return cls(code, text, type="agent")

    @classmethod
    def driver(cls, code: int, text: str) -> ApiError:
        """Type ``driver``: the register refused it (ATOL's codes are the driver's, negative)."""
        return cls(code, text, type="driver")
