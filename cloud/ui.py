"""The operator page: ``/`` (the page), ``/ui/static/{app.js,style.css}`` and ``/ui/state`` (the
JSON the page polls every second), all behind HTTP Basic auth.  A user sees only the registers
and requests of their own groups.

What it needs of the service (`CloudService`, names agreed with CORE):

* ``service.storage`` -- `queue_depth(group)` and `recent(groups, limit)` of the `Storage` protocol
* ``service.pool.views()`` -- the registers' `RegisterView`s, fresh
* ``service.users.verify(login, password) -> bool`` and ``service.users.groups(login)`` -- the
  groups (``group_code``) that login may see.  `kkt.cloud.auth.Users.verify` remembers a login
  that passed for a while, so the page's poll every second costs no scrypt each time.

The page is plain HTML, CSS and JavaScript shipped in ``kkt.cloud.web``: no build step, nothing
from a CDN, so it works on a till's network with no internet.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations at run
# time, and they name dependencies local to `ui_router`.
from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime
from importlib import resources
from typing import Annotated, Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from kkt.cloud.model import RegisterView, ReportView

REALM = "kkt cloud"
RECENT_LIMIT = 50

STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

# The page loads nothing but itself: a receipt's text (external_id, an error) cannot run as
# script even if the JS had a bug, and the page cannot be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class UiUsers(Protocol):
    def verify(self, login: str, password: str) -> bool: ...
    def groups(self, login: str) -> Collection[str]: ...


class UiPool(Protocol):
    def views(self) -> list[RegisterView]: ...


class UiStorage(Protocol):
    def queue_depth(self, group: str | None = None) -> int: ...
    def recent(self, groups: Collection[str], limit: int = 50) -> list[ReportView]: ...


class UiService(Protocol):
    @property
    def storage(self) -> UiStorage: ...
    @property
    def pool(self) -> UiPool: ...
    @property
    def users(self) -> UiUsers: ...


def receipt_link(view: ReportView) -> str:
    """The rendered receipt of a request, as the API serves it."""
    group, uuid = quote(view.group, safe=""), quote(view.uuid, safe="")
    return f"/possystem/v5/{group}/report/{uuid}/receipt.html"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _register_json(view: RegisterView, today: date) -> dict[str, Any]:
    return {
        "name": view.name,
        "group": view.group,
        "protocol": view.protocol,
        "state": view.state,
        "detail": view.detail,
        "fn_serial": view.fn_serial,
        "fn_expires": view.fn_expires.isoformat() if view.fn_expires else None,
        "fn_days_left": (view.fn_expires - today).days if view.fn_expires else None,
        "ofd_unsent": view.ofd_unsent,
        "ofd_first_unsent": view.ofd_first_unsent,
        "paper": view.paper,
        "in_flight": view.in_flight,
        "done": view.done,
        "updated_at": _iso(view.updated_at),
    }


def _receipt_json(view: ReportView) -> dict[str, Any]:
    result = view.result or {}
    return {
        "uuid": view.uuid,
        "group": view.group,
        "api": view.api,
        "operation": view.operation,
        "external_id": view.external_id,
        "status": view.status,
        "accepted_at": _iso(view.accepted_at),
        "done_at": _iso(view.done_at),
        "register": view.register,
        "ofd": view.ofd,
        "total": result.get("total"),  # kopecks
        "document_number": result.get("document_number"),
        "fiscal_sign": result.get("fiscal_sign"),
        "error": (view.error or {}).get("text"),
        "link": receipt_link(view) if view.status == "done" else None,
    }


def ui_state(
    storage: UiStorage,
    views: Iterable[RegisterView],
    login: str,
    groups: Collection[str],
    now: datetime,
) -> dict[str, Any]:
    """What the page shows, limited to `groups`."""
    mine = sorted(groups)
    depths = {group: storage.queue_depth(group) for group in mine}
    registers = [v for v in views if v.group in groups]
    registers.sort(key=lambda v: (v.group, v.name))
    return {
        "now": now.isoformat(),
        "login": login,
        "groups": mine,
        "queue": {"total": sum(depths.values()), "groups": depths},
        "registers": [_register_json(v, now.date()) for v in registers],
        "receipts": [_receipt_json(v) for v in storage.recent(mine, RECENT_LIMIT)],
    }


def _static(name: str) -> bytes:
    return resources.files("kkt.cloud.web").joinpath(name).read_bytes()


def ui_router(service: UiService) -> APIRouter:
    """The operator page's routes; `create_app` includes them at the root."""
    basic = HTTPBasic(auto_error=False, realm=REALM)
    page = _static("index.html")
    assets = {name: _static(name) for name in STATIC}
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}

    # A plain `def`: FastAPI runs it in its thread pool, where the blocking scrypt belongs.
    def operator(
        credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    ) -> str:
        if credentials is None:
            raise HTTPException(401, "log in with a cloud user's login and password", challenge)
        if not service.users.verify(credentials.username, credentials.password):
            raise HTTPException(401, "wrong login or password", challenge)
        return credentials.username

    Operator = Annotated[str, Depends(operator)]
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def index(login: Operator) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    @router.get("/ui/static/{name}")
    def static(name: str, login: Operator) -> Response:
        # a fixed list, not a folder: no path from the URL ever reaches the file system
        if name not in STATIC:
            raise HTTPException(404, f"no such file: {name}")
        return Response(assets[name], media_type=STATIC[name], headers=SECURITY_HEADERS)

    @router.get("/ui/state")
    def state(login: Operator) -> Response:
        groups = service.users.groups(login)
        body = ui_state(
            service.storage, service.pool.views(), login, groups, datetime.now(UTC).astimezone()
        )
        return JSONResponse(body, headers=SECURITY_HEADERS)

    return router
