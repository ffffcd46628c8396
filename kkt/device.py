"""`Device`: what `Register` needs from one vendor's protocol.

A device turns the vendor-neutral steps of the driver (open a shift, add an item, close the
receipt, read a document ...) into its protocol's commands and its answers into `kkt.results`.
`Register` keeps what is the same for every vendor: the exactly-once rules, the journal, the
checks before and after the closing command.

The receipt steps carry their exactly-once promise *here*, because how a vendor can tell whether a
step was taken after a failed exchange differs: Shtrih asks the open receipt's item count and
subtotal, ATOL fetches the task's result from its buffer (``Req``).  Every method raises only the
driver's errors (`kkt.errors`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Protocol

from .archive import Document
from .receipt import Operation, Receipt
from .results import DeviceInfo, DocumentInfo, FnInfo, Formed, OfdQueue, ShiftState, Status


class Device(Protocol):
    vendor: ClassVar[str]  # "shtrih", "atol"
    password: int
    # True while this driver knows no receipt is open: only its own completed receipts or a
    # confirmed cancel set it; any other state-changing command clears it.  It spares one status
    # query per receipt in the common case.
    no_open_receipt: bool

    def raw(self, request: Any) -> Any:
        """A typed request of this vendor's protocol, its typed answer."""

    def close(self) -> None: ...

    # -- queries ----------------------------------------------------------------------------------

    def status(self) -> Status: ...

    def device_info(self) -> DeviceInfo: ...

    def fn_info(self) -> FnInfo: ...

    def fn_serial(self) -> str:
        """The FN's 16-digit serial (validated: a damaged answer is `BadAnswer`)."""

    def last_document(self) -> int: ...

    def shift(self) -> ShiftState: ...

    def find_document(self, number: int) -> DocumentInfo:
        """The archive's record of document ``number`` -- never another's (`BadAnswer`)."""

    def read_document(self, number: int) -> Document:
        """Document ``number`` whole, its TLV decoded (`DeviceError` where the model cannot)."""

    def clock(self) -> dt.datetime | None: ...

    def ofd_queue(self) -> OfdQueue: ...

    # -- documents and the printer ----------------------------------------------------------------

    def open_shift(self, cashier: str | None) -> Formed: ...

    def close_shift(self, cashier: str | None) -> Formed: ...

    def x_report(self) -> None: ...

    def correction(self, operation: Operation, total: int, reason: str) -> Formed: ...

    def cash_in(self, amount: int) -> None: ...

    def cash_out(self, amount: int) -> None: ...

    def print_text(self, text: str) -> None: ...

    def cut(self, partial: bool) -> None: ...

    def continue_print(self) -> None: ...

    def set_datetime(self, when: dt.datetime) -> None: ...

    # -- the receipt's steps ----------------------------------------------------------------------

    def receipt_open(self) -> bool:
        """Is a receipt open on the register now?"""

    def open_receipt(self, receipt: Receipt) -> None:
        """Open it (with its receipt-level tags) exactly once, or raise."""

    def add_item(self, receipt: Receipt, index: int, subtotal: int) -> None:
        """Add ``receipt.items[index]`` exactly once (``subtotal`` is the receipt's sum before
        it), or raise `NotFiscalized` when the open receipt no longer adds up."""

    def subtotal(self) -> int:
        """The open receipt's sum as the register counts it."""

    def pay(self, receipt: Receipt) -> None:
        """Whatever the closing command does not carry of the payments (before it)."""

    def close_receipt(self, receipt: Receipt) -> Formed:
        """One attempt at the closing command: the FN forms the document."""

    def cancel_receipt(self) -> None:
        """Cancel the open receipt, if one is open."""


__all__ = ["Device"]
