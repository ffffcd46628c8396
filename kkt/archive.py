"""Reading the fiscal storage's archive: whole documents, the registration, the shift's start.

Read-only: everything here may be asked again after a failure, and is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kkt.protocols.ffd import DOCUMENT_NAMES, TlvList, find, tlv_to_json

from .results import DocumentType

if TYPE_CHECKING:
    from .device import Device

READ_TRIES = 3


@dataclass(frozen=True, slots=True)
class Document:
    """One fiscal document from the FN's archive, its TLV decoded."""

    number: int
    type: int  # FFD document type (tag of its STLV): 1, 11, 2, 21, 3, 31, 5, 6
    when: dt.datetime | None  # to the minute, as FF0A reports it
    fiscal_sign: int
    ofd_confirmed: bool
    tlv: TlvList

    @property
    def type_name(self) -> str:
        return DOCUMENT_NAMES.get(self.type, f"документ типа {self.type}")

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "type": self.type,
            "typeName": self.type_name,
            "dateTime": self.when.isoformat() if self.when else None,
            "fiscalSign": str(self.fiscal_sign),
            "ofdConfirmed": self.ofd_confirmed,
            "tlv": tlv_to_json(self.tlv),
        }


@dataclass(frozen=True, slots=True)
class Registration:
    """What the (last) registration report of this FN says about the register's owner."""

    document_number: int
    inn: str  # tag 1018
    rnm: str  # tag 1037, the register's registration number
    user: str  # tag 1048
    address: str  # tag 1009
    ffd: str  # tag 1209 as a version: "1.05", "1.1", "1.2"

    def to_json(self) -> dict[str, Any]:
        return {
            "documentNumber": self.document_number,
            "userInn": self.inn,
            "registrationNumber": self.rnm,
            "user": self.user,
            "address": self.address,
            "ffdVersion": self.ffd,
        }


_FFD_VERSIONS = {1: "1.0", 2: "1.05", 3: "1.1", 4: "1.2"}  # tag 1209 values


def read_registration(device: Device) -> Registration:
    """The registration report an FN starts with (its document 1).

    A later re-registration in the same FN changes the address or the OFD, not the RNM or the
    owner's INN (those need a new registration), so document 1 answers what callers ask here
    without walking an archive of a million documents.
    """
    number = 1
    document = device.read_document(number)
    tlv = document.tlv

    def text(tag: int) -> str:
        value = find(tlv, tag)
        return value.strip() if isinstance(value, str) else ""

    version = find(tlv, 1209)
    return Registration(
        document_number=number,
        inn=text(1018),
        rnm=text(1037),
        user=text(1048),
        address=text(1009),
        ffd=_FFD_VERSIONS.get(version, str(version)) if isinstance(version, int) else "",
    )


def shift_opened_at(device: Device, shift_number: int, receipts: int) -> dt.datetime | None:
    """When the open shift began: its shift-open report sits about ``receipts`` documents back.

    A shift holds its receipts plus a few other documents (state reports, corrections), so the
    search starts there and walks back a bounded number of documents.
    """
    last = device.last_document()
    start = max(1, last - receipts)
    for number in range(start, max(0, start - 64), -1):
        found = device.find_document(number)
        if found.type == DocumentType.SHIFT_OPEN and found.shift_number == shift_number:
            return found.when
    return None
