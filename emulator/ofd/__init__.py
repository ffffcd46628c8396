"""The emulated OFD (оператор фискальных данных): the server a register sends its documents to.

`OfdService` serves one from a state directory (``ofd.sqlite``, ``owner.pid``, ``control.sock``):
`server.OfdServer` checks each session and document message (`kkt.protocols.ofd`), stores every
document once (`store.OfdStore`) and answers it with an operator receipt; `control` makes
outages and faults on demand (`faults.OfdFaults`).  ``kkt ofd serve|docs|ctl|stop`` is its
command line.  Imports only `kkt.protocols` and the emulator's state-lock conventions.
"""

from .control import ACTIONS, SOCKET_NAME, OfdControlError, OfdControls
from .faults import OfdFaults
from .server import OfdServer, OfdStats
from .service import OfdService, OfdStateBusy, OfdThread
from .store import FILE_NAME, OfdStore, StoredDocument

__all__ = [
    "ACTIONS",
    "FILE_NAME",
    "SOCKET_NAME",
    "OfdControlError",
    "OfdControls",
    "OfdFaults",
    "OfdServer",
    "OfdService",
    "OfdStateBusy",
    "OfdStats",
    "OfdStore",
    "OfdThread",
    "StoredDocument",
]
