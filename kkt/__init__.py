"""kktkit: a driver and an emulator for Russian fiscal cash registers (ККТ, 54-FZ).

Installed packages:

* ``kkt`` -- the driver (one vendor-neutral Register API over Shtrih-M and ATOL registers);
* ``kkt.protocols`` -- the sans-IO protocol core (Shtrih-M, ATOL v3, FFD documents);
* ``kkt.emulator`` -- the register and fiscal-storage emulator;
* ``kkt.tools`` -- the ``kkt`` command.

The driver, from the top down (imports point down only; ``tests/kkt/test_layout.py`` checks):
`connect` (a URL to a `Register`), `register` (the API and its exactly-once policy, one lock per
command), `settle` (what became of a receipt after a failure: the FN's archive decides),
`discover`; `ofd` (the FN's queue for the OFD, and the relay for a register with no network);
``vendors/`` (`base`: the one `Device` contract and what every vendor does alike;
`shtrih`, `atol`: the two vendors and their refusal codes); ``transport/`` (`session`: one loop
over a port with each vendor's link; `ports`: opening a port by URL; `tcp`, `usb`, `inprocess`);
``formats/`` (`atol_json`: ATOL's receipt JSON); and the vocabulary every layer shares:
`receipt`, `results`, `errors`, `journal`; `printform` (a receipt's document from what was
sent and what the FN answered, for `kkt.render`).
"""

__version__ = "0.1.0"

import logging as _logging

from kkt.protocols.ffd import Payments
from kkt.protocols.ffd.marking import PlannedStatus

from .connect import connect
from .correction import CorrectionBasis
from .discover import Found, discover
from .errors import (
    BadMarkCode,
    CannotSend,
    CashNotMoved,
    DeviceError,
    FnExhausted,
    KeyConflict,
    KktError,
    MarkAlreadySold,
    MarkRejected,
    NotFiscalized,
    NotSupported,
    OfdBlocked,
    OfdError,
    OfdReceiptRefused,
    OfdRefused,
    OfdUnreachable,
    OutcomeUnknown,
    PaperOut,
    PortBusy,
    ReceiptRejected,
    ShiftExpired,
    TransportError,
    WrongMode,
    WrongPassword,
    WrongProtocol,
)
from .marking import MarkCheck, MarkingState
from .printform import receipt_document
from .receipt import Item, Operation, Receipt, TaxSystem, Vat
from .register import Register
from .results import FiscalResult, MarkedItem, Registration
from .settle import DamagedClosing

# A library's logs are its user's to show: without a handler of theirs, the driver's warnings
# about faults it recovered from would reach stderr through Python's last-resort handler.
_logging.getLogger("kkt").addHandler(_logging.NullHandler())

__all__ = [
    "BadMarkCode",
    "CannotSend",
    "CashNotMoved",
    "CorrectionBasis",
    "DamagedClosing",
    "DeviceError",
    "FiscalResult",
    "FnExhausted",
    "Found",
    "Item",
    "KeyConflict",
    "KktError",
    "MarkAlreadySold",
    "MarkCheck",
    "MarkRejected",
    "MarkedItem",
    "MarkingState",
    "NotFiscalized",
    "NotSupported",
    "OfdBlocked",
    "OfdError",
    "OfdReceiptRefused",
    "OfdRefused",
    "OfdUnreachable",
    "Operation",
    "OutcomeUnknown",
    "PaperOut",
    "Payments",
    "PlannedStatus",
    "PortBusy",
    "Receipt",
    "ReceiptRejected",
    "Register",
    "Registration",
    "ShiftExpired",
    "TaxSystem",
    "TransportError",
    "Vat",
    "WrongMode",
    "WrongPassword",
    "WrongProtocol",
    "__version__",
    "connect",
    "discover",
    "receipt_document",
]
