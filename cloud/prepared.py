"""`Prepared`: what accepted requests convert to, handed from the HTTP side to the worker that
claims them in the same process.

Accepting a request validates its body and converts it to the driver's call (a `kkt.Receipt`,
or a correction's arguments); the worker that claims it used to do both again from the stored
body -- a third of a worker's CPU per receipt.  The app puts the conversion here under the
request's uuid once the request is committed; a worker takes it out when it claims that uuid.

Only a speed-up, never the source of truth: a request claimed after a restart, by another
instance (PostgreSQL), or after it fell out of the bounded store is converted from its stored
body as before -- by the same code from the same body, so to the same call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_PREPARED = 20_000  # above the default queue limit (10 000): a full queue fits


class Prepared:
    def __init__(self, limit: int = MAX_PREPARED) -> None:
        self._limit = limit
        self._made: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, uuid: str, made: object) -> None:
        if made is None:
            return
        with self._lock:
            self._made[uuid] = made
            while len(self._made) > self._limit:
                self._made.popitem(last=False)  # the oldest: converted again if ever claimed

    def take(self, uuid: str) -> object | None:
        with self._lock:
            return self._made.pop(uuid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._made)
