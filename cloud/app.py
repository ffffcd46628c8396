"""`create_app(service) -> FastAPI`: ATOL Online v4 and v5 over HTTP, plus our extensions.

Routes (for ``v`` in 4 and 5, under ``/possystem/v{v}/``): ``getToken`` (POST JSON or GET query),
``{group}/{operation}`` (POST), ``{group}/report/{uuid}`` and
``{group}/report/{uuid}/receipt.{txt,svg,png,html}`` (GET); ``/openapi.json``; ``/metrics``;
the operator page (``/``, ``/ui/...``).  Every error answer is a `kkt.cloud.atol.ApiError`.

Answers and the choices made where ATOL leaves room:

* A token comes in the ``Token`` header or ``?token=``.  None: code 10 (401).  Unknown or older
  than 24 h: code 11 (401) -- the two cannot be told apart without keeping expired tokens.
* getToken answers ``{"error": null, "token", "timestamp"}`` (fact sheet §2.1); its errors are
  ATOL's error answer (``{"error": {...}, "status": "fail", "timestamp"}``) with no ``token``
  field: §2.1 gives only the success shape, and we add no field it does not name.
  A group the token's login may not use (or that does not exist): code 20 (401), so another
  group's existence is not revealed; a report of another group's uuid: code 30, as unknown.
* Reports and receipts (GET) also take HTTP Basic credentials of a configured user, so the
  operator page's links open in a browser; registering always needs a token.
* Content-Type other than ``application/json``: code 41, HTTP 415.
* A receipt picture of a request not done yet: code 34, HTTP 404 (nothing to draw yet).
* A body over ``max_body`` bytes: HTTP 413 with ATOL's code 32 in the body (clients that read
  only ``error.code`` see a request refused as invalid; HTTP says why).
* More than ``max_queue`` requests waiting in the request's group: HTTP 429 with ``Retry-After:
  1`` and ATOL's error shape (code 1, "try again"), before anything is stored -- but never for a
  retry of a request already accepted (same group and external_id): that one is answered as a
  duplicate (below), its uuid or its conflict.
* Duplicates (an ``external_id`` -- or an ``Idempotency-Key`` header value -- already used in
  the group): ``strict`` (default) answers the first request's uuid and status, HTTP 200, when
  the body is the same (its fingerprint: the body without ``timestamp``), and HTTP 409 with code
  33 and the first uuid when it differs; ``atol`` answers code 33 + the first uuid, HTTP 400,
  always, as ATOL does -- except a retry with the same ``Idempotency-Key`` (our header, our
  rules) and the same body: HTTP 200 and its uuid, as in ``strict``.  Code 33 says ``"status":
  "wait"`` (ATOL's table: poll that uuid).  An Idempotency-Key wins over the external_id when
  both match.
* Everything stored is committed before the answer is sent.
* The database unreachable (`StorageUnavailable`: PostgreSQL restarting, the network): HTTP 503
  with ``Retry-After`` and ATOL's error shape (code 1, type ``system``, the text says retry):
  nothing was stored, the client sends the same request again (same external_id: never twice).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

import kkt

from . import auth, jsontext, metrics, ui
from .atol import (
    ApiError,
    accepted_json,
    atol_time,
    order_receipt,
    report_json,
    to_order,
    to_order_converted,
)
from .auth import Users
from .config import CloudConfig, GroupConfig
from .model import OPERATIONS_V4, OPERATIONS_V5, Order, ReportView
from .prepared import Prepared
from .storage.base import Accepted, Storage, StorageUnavailable
from .tokens import TokenCache

log = logging.getLogger(__name__)

APIS = {4: OPERATIONS_V4, 5: OPERATIONS_V5}
RECEIPT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "html": "text/html; charset=utf-8",
}
MAX_KEY_LENGTH = 128  # Idempotency-Key, as ATOL's external_id
RETRY_AFTER_SECONDS = 1
UNAVAILABLE_RETRY_AFTER = 5  # seconds a client waits when the database is unreachable


class AppStorage(Storage, Protocol):
    """`Storage` and the request body as received, which the receipt picture draws from
    (`SqliteStorage.body`)."""

    def body(self, uuid: str) -> dict[str, Any] | None: ...

    def idempotency_key(self, uuid: str) -> str | None: ...


class Service(ui.UiService, Protocol):
    """What the app uses of `kkt.cloud.service.CloudService`: what the operator page uses, and
    more (a protocol: the service module imports this one to serve it)."""

    @property
    def storage(self) -> AppStorage: ...

    @property
    def users(self) -> Users: ...

    @property
    def config(self) -> CloudConfig: ...

    @property
    def latencies(self) -> metrics.Latencies: ...


def storage_unavailable(retry_after: int) -> ApiError:
    """Our 503 (ATOL has no row for it): code 1, as its 429, the client retries after
    ``retry_after`` seconds; the text does not carry the database's address."""
    return ApiError(
        1,
        f"the service's database cannot be reached now: nothing was stored; send the same "
        f"request again in {retry_after} s",
        http_status=503,
        headers={"Retry-After": str(retry_after)},
    )


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # jsontext keeps Decimal sums exact (ATOL's numbers are roubles with kopecks)
    return Response(
        jsontext.dumps(data), status_code=status, headers=headers, media_type="application/json"
    )


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="kkt cloud",
        summary="ATOL Online v4/v5 compatible cloud register over kktkit",
        version=kkt.__version__,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ApiError)
    async def refused(request: Request, error: ApiError) -> Response:
        # A refused request is the operator's news (a shop sending bad bodies, a wrong token):
        # one line each in the server's log; accepted ones are not logged (one a receipt).
        log.info(
            "%s %s answered %d, error %d: %s",
            request.method,
            request.url.path,
            error.http_status,
            error.code,
            error.text,
        )
        return _json(error.json(), error.http_status, error.headers)

    @app.exception_handler(StorageUnavailable)
    async def unavailable(_request: Request, error: Exception) -> Response:
        log.warning("answered 503: %s", error)
        refusal = storage_unavailable(UNAVAILABLE_RETRY_AFTER)
        return _json(refusal.json(), refusal.http_status, refusal.headers)

    tokens = TokenCache(service.storage.token_login)  # one for both APIs: a token serves both
    for api in APIS:
        app.include_router(_api_router(service, api, tokens))
    app.add_api_route("/metrics", _metrics_route(service), methods=["GET"], include_in_schema=False)
    app.include_router(ui.ui_router(service))
    return app


def _api_router(service: Service, api: int, tokens: TokenCache) -> APIRouter:
    router = APIRouter(prefix=f"/possystem/v{api}", tags=[f"ATOL Online v{api}"])
    storage = service.storage
    server = service.config.server
    # the service's hand-over of conversions to its workers (a stand-in service may have none)
    prepared: Prepared | None = getattr(service, "prepared", None)
    reads_inline = bool(getattr(storage, "reads_inline", False))  # `SqliteStorage.reads_inline`

    async def token_of(login: str | None, password: str | None) -> dict[str, Any]:
        if not isinstance(login, str) or not isinstance(password, str):
            raise ApiError.validation_exception("give login and pass (strings)")
        if not await run_in_threadpool(service.users.verify, login, password):
            raise ApiError.wrong_login_or_password()
        token = auth.new_token()
        now = datetime.now(UTC)
        hashed, expires = auth.token_hash(token), now + auth.TOKEN_LIFETIME
        await run_in_threadpool(storage.add_token, hashed, login, expires)
        tokens.issued(hashed, login, expires)  # once stored: another instance may be asked
        return {"error": None, "token": token, "timestamp": atol_time(now)}

    @router.post("/getToken", summary="a token for 24 hours (JSON {login, pass})")
    async def get_token_post(request: Request) -> Response:
        raw = await _body(request, server.max_body)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError.validation_exception(
                'the body is not JSON: send {"login": …, "pass": …}'
            ) from None
        if not isinstance(data, dict):
            raise ApiError.validation_exception(
                'the body must be an object: {"login": …, "pass": …}'
            )
        return _json(await token_of(data.get("login"), data.get("pass")))

    @router.get("/getToken", summary="a token for 24 hours (?login=&pass=)")
    async def get_token_get(
        login: str | None = None,
        password: Annotated[str | None, Query(alias="pass")] = None,  # `pass` is a keyword
    ) -> Response:
        return _json(await token_of(login, password))

    async def login_for(request: Request, group: str, *, basic: bool = False) -> str:
        """The token's login (code 10/11 without a valid one), checked against the group.
        ``basic``: HTTP Basic credentials do as well (the operator page's links to reports and
        receipts: a browser sends the page's login, not a token)."""
        token = request.headers.get("token") or request.query_params.get("token")
        login: str | None = None
        if not token and basic:
            login = await _basic_login(request, service.users)
        if login is None:
            if not token:
                raise ApiError.missing_token()
            hashed, now = auth.token_hash(token), datetime.now(UTC)
            # a token known here is checked without storage (`TokenCache`): no worker thread
            login = tokens.known(hashed, now) or await run_in_threadpool(tokens.lookup, hashed, now)
        if login is None:
            raise ApiError.expired_token()
        if group not in service.users.groups(login):
            raise ApiError.group_code_and_token_dont_match(group)
        return login

    @router.post("/{group}/{operation}", summary="register a receipt or correction")
    async def register(request: Request, group: str, operation: str) -> Response:
        await login_for(request, group)
        if operation not in APIS[api]:
            raise ApiError.incoming_operation_not_supported(operation, APIS[api])
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise ApiError.unsupported_media_type(media)
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ApiError.incoming_validation_exception(
                [f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} characters"]
            )
        raw = await _body(request, server.max_body)
        order, made = to_order_converted(api, operation, group, raw)
        # one trip to a worker thread for the overload check and the accept (each trip costs
        # the event loop more than the check itself)
        accepted = await run_in_threadpool(_accept, storage, order, key, server.max_queue)
        if accepted is None:
            raise ApiError.overloaded(RETRY_AFTER_SECONDS)
        now = datetime.now(UTC)
        if accepted.created:
            if prepared is not None:  # committed: a worker may claim it from now on
                prepared.put(accepted.uuid, made)
            return _json(accepted_json(accepted.uuid, now))
        if accepted.same_body and (
            server.duplicates == "strict"
            # ATOL's rules are for its own fields; the Idempotency-Key is ours, and a retry
            # with the same key and body is what the header is for
            or (
                key is not None
                and await run_in_threadpool(storage.idempotency_key, accepted.uuid) == key
            )
        ):
            return _json(accepted_json(accepted.uuid, now, accepted.status))
        raise ApiError.incoming_external_id_already_exists(
            accepted.uuid,
            order.external_id,
            group,
            http_status=409 if server.duplicates == "strict" else 400,
            key=key,
        )

    async def view_for(request: Request, group: str, uuid: str) -> ReportView:
        await login_for(request, group, basic=True)
        # A report is the request clients repeat most.  Where storage reads one row at once
        # (SQLite: WAL, a reader never waits for a writer) it is read here: the trip to a
        # worker thread and back cost the event loop more than the read.
        if reads_inline:
            view = storage.report(uuid)
        else:
            view = await run_in_threadpool(storage.report, uuid)
        if view is None or view.group != group:
            raise ApiError.missing_uuid(uuid)
        return view

    @router.get("/{group}/report/{uuid}", summary="the request's status and fiscal data")
    async def report(request: Request, group: str, uuid: str) -> Response:
        return _json(report_json(await view_for(request, group, uuid)))

    @router.get("/{group}/report/{uuid}/receipt.{fmt}", summary="the receipt drawn")
    async def receipt(request: Request, group: str, uuid: str, fmt: str) -> Response:
        if fmt not in RECEIPT_TYPES:
            raise ApiError.bad_request(
                f"receipt.{fmt}: ask for one of {', '.join(RECEIPT_TYPES)}", http_status=404
            )
        view = await view_for(request, group, uuid)
        if view.status != "done" or view.result is None:
            raise ApiError.state_check_not_found(uuid, http_status=404)
        body = await run_in_threadpool(storage.body, uuid)
        group_config = service.config.group(group)
        drawn = await run_in_threadpool(_draw, view, body, fmt, group_config)
        return Response(drawn, media_type=RECEIPT_TYPES[fmt])

    return router


def _accept(storage: Storage, order: Order, key: str | None, max_queue: int) -> Accepted | None:
    """``order`` accepted (committed: `Storage.accept`), or None when it is refused as an
    overload (`_overloaded`)."""
    if _overloaded(storage, order, max_queue):
        return None
    return storage.accept(order, idempotency_key=key)


def _overloaded(storage: Storage, order: Order, max_queue: int) -> bool:
    """Whether ``order`` is refused with 429: its group has ``max_queue`` requests waiting
    (a group's burst does not refuse the others') and it is not one of them -- a retry of an
    accepted request always gets its uuid (or its conflict), never "try again".  A retry is
    found by its external_id: `Storage.accept` never stores a second request under one, so
    what `find` sees here `accept` answers."""
    if storage.queue_depth(order.group) < max_queue:
        return False
    return storage.find(order.group, order.external_id) is None


async def _basic_login(request: Request, users: Users) -> str | None:
    """The login of valid HTTP Basic credentials, else None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if not sep:
        return None
    verified: bool = await run_in_threadpool(users.verify, login, password)
    return login if verified else None


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError.body_too_large(limit, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError.body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


# the stored result is FiscalResult.to_json() plus the register's details (rnm, ofd_inn ...)
_FISCAL_FIELDS = frozenset(field.name for field in dataclasses.fields(kkt.FiscalResult))


def _draw(
    view: ReportView, body: dict[str, Any] | None, fmt: str, group: GroupConfig | None = None
) -> bytes:
    from kkt.render import RenderError, render

    try:
        drawn = render(_printable(view, body, group), fmt)
    except (RenderError, ImportError) as error:
        raise ApiError.error_server_configuration(
            f"cannot draw receipt.{fmt} here: {error}", http_status=501
        ) from None
    return drawn if isinstance(drawn, bytes) else str(drawn).encode()


def _printable(view: ReportView, body: dict[str, Any] | None, group: GroupConfig | None) -> Any:
    """What to draw: the whole receipt -- its items and payments from the request, its fiscal
    data from the FN's answer, and the register's owner as the print form shows it (INN, RNM,
    payment address, FNS site: `_registration`) -- by `kkt.receipt_document`; for a correction
    (no items to list) the identifying part the stored `FiscalResult` has: date, numbers, sum,
    FN, fiscal sign, QR."""
    assert view.result is not None
    fiscal = kkt.FiscalResult.from_json(
        {name: value for name, value in view.result.items() if name in _FISCAL_FIELDS}
    )
    if body is None or "correction" in view.operation:
        return fiscal
    try:
        order = to_order(view.api, view.operation, view.group, jsontext.dumps(body).encode())
        registration = _registration(view.result, order, group)
        return kkt.receipt_document(order_receipt(order), fiscal, registration)
    except Exception:  # a picture of the identifying part beats no picture at all
        log.warning("receipt %s: drawn from its fiscal data only", view.uuid, exc_info=True)
        return fiscal


def _registration(
    result: dict[str, Any], order: Order, group: GroupConfig | None
) -> kkt.Registration:
    """The register's owner as far as the stored result knows it: the RNM and FNS site the
    worker stored with it, the INN the register checked the request against (the group's;
    the request's own ``company.inn`` equals it, else the register refused it) and the payment
    address the request or the group gives.  The registration report's other fields (its
    number, FFD version, the user's name) are not printed from here: left empty."""
    company = order.body.get("receipt", order.body.get("correction", {})).get("company", {})
    address = company.get("payment_address") if isinstance(company, dict) else None
    return kkt.Registration(
        document_number=0,
        inn=(group.inn if group is not None and group.inn else None) or order.inn,
        rnm=str(result.get("rnm") or ""),
        user="",
        address=str(address or (group.payment_address if group is not None else "") or ""),
        ffd="",
        fns_site=str(result.get("fns_site") or ""),
    )


def _metrics_route(service: Service) -> Callable[[], Response]:
    groups = [group.code for group in service.config.groups]

    def exposition() -> Response:
        # the service's one Latencies, fed by the pool's on_latency: the histogram's samples
        text = metrics.metrics_text(
            service.storage, service.pool.views(), service.latencies, groups=groups
        )
        return Response(text, media_type=metrics.CONTENT_TYPE)

    return exposition
