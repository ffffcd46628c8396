"""`create_app(service) -> FastAPI`: ATOL Online v4 and v5 over HTTP, plus our extensions.

Routes (for ``v`` in 4 and 5, under ``/possystem/v{v}/``): ``getToken`` (POST JSON or GET query),
``{group}/{operation}`` (POST), ``{group}/report/{uuid}`` and
``{group}/report/{uuid}/receipt.{txt,svg,png,html}`` (GET); ``/openapi.json``; ``/metrics`` and
the operator page (``/``, ``/ui/...``) when those modules are installed.

Answers and the choices made where ATOL leaves room:

* A token comes in the ``Token`` header or ``?token=``.  None: code 10 (401).  Unknown or older
  than 24 h: code 11 (401) -- the two cannot be told apart without keeping expired tokens.
  A group the token's login may not use (or that does not exist): code 20 (401), so another
  group's existence is not revealed; a report of another group's uuid: code 30, as unknown.
* Reports and receipts (GET) also take HTTP Basic credentials of a configured user, so the
  operator page's links open in a browser; registering always needs a token.
* Content-Type other than ``application/json``: code 41, HTTP 415.
* A body over ``max_body`` bytes: HTTP 413 with ATOL's code 32 in the body (clients that read
  only ``error.code`` see a request refused as invalid; HTTP says why).
* More than ``max_queue`` requests waiting (all groups): HTTP 429 with ``Retry-After: 1`` and
  ATOL's error shape (code 1, "try again"), before anything is stored.
* Duplicates (an ``external_id`` -- or an ``Idempotency-Key`` header value -- already used in
  the group): ``strict`` (default) answers the first request's uuid and status, HTTP 200, when
  the body is the same (its fingerprint: the body without ``timestamp``), and HTTP 409 with code
  33 and the first uuid when it differs; ``atol`` answers code 33 + the first uuid, HTTP 400,
  always, as ATOL does.  An Idempotency-Key wins over the external_id when both match.
* Everything stored is committed before the answer is sent.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid as uuids
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

import kkt

from . import auth, bridge, jsontext
from .auth import Users
from .config import CloudConfig
from .model import OPERATIONS_V4, OPERATIONS_V5, RegisterView, ReportView
from .storage.base import Storage

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


class Registers(Protocol):
    def views(self) -> list[RegisterView]: ...


class Service(Protocol):
    """What the app uses of `kkt.cloud.service.CloudService` (a protocol: the service module
    imports this one to serve it)."""

    @property
    def storage(self) -> Storage: ...

    @property
    def users(self) -> Users: ...

    @property
    def config(self) -> CloudConfig: ...

    @property
    def pool(self) -> Registers: ...


def atol_time(moment: datetime) -> str:
    """ATOL's timestamp form, ``dd.mm.yyyy HH:MM:SS`` (UTC)."""
    return moment.astimezone(UTC).strftime("%d.%m.%Y %H:%M:%S")


class Refusal(Exception):
    """An ATOL error answer raised by a route: ``code``, ``text``, HTTP ``status``."""

    def __init__(
        self,
        code: int,
        status: int,
        text: str,
        *,
        kind: str = "system",
        uuid: str | None = None,
        state: str = "fail",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(text)
        self.code, self.status, self.text, self.kind = code, status, text, kind
        self.uuid, self.state, self.headers = uuid, state, headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {}
        if self.uuid is not None:
            body["uuid"] = self.uuid
        body.update(
            error={
                "error_id": str(uuids.uuid4()),
                "code": self.code,
                "text": self.text,
                "type": self.kind,
            },
            status=self.state,
            timestamp=atol_time(datetime.now(UTC)),
        )
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _json(data: Any, status: int = 200) -> Response:
    # jsontext keeps Decimal sums exact (ATOL's numbers are roubles with kopecks)
    return Response(jsontext.dumps(data), status_code=status, media_type="application/json")


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="kkt cloud",
        summary="ATOL Online v4/v5 compatible cloud register over kktkit",
        version=kkt.__version__,
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(Refusal)
    async def refused(_request: Request, error: Refusal) -> Response:
        return error.response()

    for api in APIS:
        app.include_router(_api_router(service, api))
    _mount_metrics(app, service)
    ui = bridge.optional("ui")
    if ui is not None and hasattr(ui, "ui_router"):
        app.include_router(ui.ui_router(service))
    return app


def _api_router(service: Service, api: int) -> APIRouter:
    router = APIRouter(prefix=f"/possystem/v{api}", tags=[f"ATOL Online v{api}"])
    storage = service.storage
    server = service.config.server

    async def token_of(login: str | None, password: str | None) -> dict[str, Any]:
        if not isinstance(login, str) or not isinstance(password, str):
            raise Refusal(13, 400, "give login and pass (strings)")
        if not await run_in_threadpool(service.users.verify, login, password):
            raise Refusal(12, 401, "wrong login or password")
        token = auth.new_token()
        now = datetime.now(UTC)
        await run_in_threadpool(
            storage.add_token, auth.token_hash(token), login, now + auth.TOKEN_LIFETIME
        )
        return {"error": None, "token": token, "timestamp": atol_time(now)}

    @router.post("/getToken", summary="a token for 24 hours (JSON {login, pass})")
    async def get_token_post(request: Request) -> Response:
        raw = await _body(request, server.max_body)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Refusal(13, 400, 'the body is not JSON: send {"login": …, "pass": …}') from None
        if not isinstance(data, dict):
            raise Refusal(13, 400, 'the body must be an object: {"login": …, "pass": …}')
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
                raise Refusal(10, 401, "no token: send the Token header (or ?token=) from getToken")
            login = await run_in_threadpool(
                storage.token_login, auth.token_hash(token), datetime.now(UTC)
            )
        if login is None:
            raise Refusal(11, 401, "the token is unknown or older than 24 h: get a new one")
        if group not in service.users.groups(login):
            raise Refusal(20, 401, f"group_code {group!r} is not one this login may use")
        return login

    @router.post("/{group}/{operation}", summary="register a receipt or correction")
    async def register(request: Request, group: str, operation: str) -> Response:
        await login_for(request, group)
        if operation not in APIS[api]:
            raise Refusal(31, 400, f"operation {operation!r} is not one of {', '.join(APIS[api])}")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise Refusal(41, 415, "send Content-Type: application/json; charset=utf-8")
        key = request.headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
            raise Refusal(32, 400, f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} characters")
        raw = await _body(request, server.max_body)
        if await run_in_threadpool(storage.queue_depth) >= server.max_queue:
            raise Refusal(
                1,
                429,
                f"{server.max_queue} requests are waiting: try again in a second",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        atol = bridge.required("atol", "to_order")
        error_class = bridge.required("atol", "ApiError")
        try:
            order = atol(api, operation, group, raw)
        except error_class as error:
            return _json(error.json(), error.http_status)
        accepted = await run_in_threadpool(storage.accept, order, idempotency_key=key)
        answer = bridge.required("atol", "accepted_json")
        now = datetime.now(UTC)
        if accepted.created:
            return _json(answer(accepted.uuid, now))
        if server.duplicates == "strict" and accepted.same_body:
            return _json(answer(accepted.uuid, now, accepted.status))
        raise Refusal(
            33,
            409 if server.duplicates == "strict" else 400,
            "a document with this external_id (or Idempotency-Key) exists in this group"
            + ("" if server.duplicates == "atol" else " with another body")
            + ": its uuid is given",
            uuid=accepted.uuid,
            state=accepted.status,
        )

    async def view_for(request: Request, group: str, uuid: str) -> ReportView:
        await login_for(request, group, basic=True)
        view = await run_in_threadpool(storage.report, uuid)
        if view is None or view.group != group:
            raise Refusal(30, 400, f"no document {uuid!r} in group {group!r}")
        return view

    @router.get("/{group}/report/{uuid}", summary="the request's status and fiscal data")
    async def report(request: Request, group: str, uuid: str) -> Response:
        return _json(bridge.report_json(await view_for(request, group, uuid)))

    @router.get("/{group}/report/{uuid}/receipt.{fmt}", summary="the receipt drawn")
    async def receipt(request: Request, group: str, uuid: str, fmt: str) -> Response:
        if fmt not in RECEIPT_TYPES:
            raise Refusal(40, 404, f"receipt.{fmt}: ask for one of {', '.join(RECEIPT_TYPES)}")
        view = await view_for(request, group, uuid)
        if view.status != "done" or view.result is None:
            raise Refusal(34, 404, f"not fiscalized ({view.status}): poll the report", uuid=uuid)
        body = await run_in_threadpool(_body_of, storage, uuid)
        drawn = await run_in_threadpool(_draw, view, body, fmt)
        return Response(drawn, media_type=RECEIPT_TYPES[fmt])

    return router


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
        raise Refusal(32, 413, f"the body is {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal(32, 413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_RESULT_FIELDS = (
    "document_number",
    "fiscal_sign",
    "fn_number",
    "shift_number",
    "receipt_number",
    "when",
    "total",
    "operation",
    "qr",
)


def _body_of(storage: Storage, uuid: str) -> dict[str, Any] | None:
    """The stored request body, where the storage keeps it (`SqliteStorage.body`)."""
    read = getattr(storage, "body", None)
    return read(uuid) if callable(read) else None


def _draw(view: ReportView, body: dict[str, Any] | None, fmt: str) -> bytes:
    from kkt.render import RenderError, render

    try:
        drawn = render(_printable(view, body), fmt)
    except (RenderError, ImportError) as error:
        raise Refusal(50, 501, f"cannot draw receipt.{fmt} here: {error}") from None
    return drawn if isinstance(drawn, bytes) else str(drawn).encode()


def _printable(view: ReportView, body: dict[str, Any] | None) -> Any:
    """What to draw: the whole receipt -- its items and payments from the request, its fiscal
    data from the FN's answer (``kkt.receipt_document``) -- where the driver and the ATOL layer
    can compose it; else (a correction, an older driver) the identifying part the stored
    `FiscalResult` has: date, numbers, sum, FN, fiscal sign, QR."""
    assert view.result is not None
    fiscal = kkt.FiscalResult.from_json({name: view.result[name] for name in _RESULT_FIELDS})
    compose = getattr(kkt, "receipt_document", None)
    atol = bridge.optional("atol")
    if compose is None or atol is None or body is None or "correction" in view.operation:
        return fiscal
    try:
        order = atol.to_order(view.api, view.operation, view.group, jsontext.dumps(body).encode())
        return compose(atol.order_receipt(order), fiscal, None)
    except Exception:  # a picture of the identifying part beats no picture at all
        log.warning("receipt %s: drawn from its fiscal data only", view.uuid, exc_info=True)
        return fiscal


def _mount_metrics(app: FastAPI, service: Service) -> None:
    metrics = bridge.optional("metrics")
    if metrics is None or not hasattr(metrics, "metrics_text"):
        return
    latencies = getattr(service, "latencies", None) or metrics.Latencies()
    groups = [group.code for group in service.config.groups]

    def exposition() -> Response:
        text = metrics.metrics_text(service.storage, service.pool.views(), latencies, groups=groups)
        return Response(text, media_type=getattr(metrics, "CONTENT_TYPE", "text/plain"))

    app.add_api_route("/metrics", exposition, methods=["GET"], include_in_schema=False)
