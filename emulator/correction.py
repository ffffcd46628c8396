"""What a correction receipt carries besides its sum: the correction's kind and basis, and the
item FFD 1.2 asks for.

The FFD's table for the correction receipt (fact sheet ``fn-ffd-ofd.md`` §1.4) makes 1174
(основание для коррекции) mandatory; what 1174 holds differs by version, and so do the sources:

* FFD 1.05: yandex/ofd ``schemas/1.05/receiptCorrection.schema.json`` requires all three of 1177
  (correctionName, наименование основания), 1178 (correctionDocumentDate) and 1179
  (correctionDocumentNumber) and also 1173 (correctionType); the fact sheet's transcription (S3)
  lists only 1178 (conditional) and 1179 (mandatory).  We form all three: the schema is the
  stricter reading and an OFD validates against a schema of that kind.
* FFD 1.2: 1177 is gone; 1178 is "дата совершения корректируемого расчета" (the date of the
  settlement being corrected) and 1179 the tax authority's order number, which only a
  correction by order (1173 = 1) has.  We form 1178 always and 1179 when the host gives it.

A host that sends no basis (older drivers, protocol commands of the FFD 1.05 era that carry only a
sum) gets the register's defaults: the kind 1173 = 0 (on the user's own initiative), 1178 = the
correction's own day at 00:00, and in 1.05 1177 = the kind's name and 1179 = "б/н" (without a
number).  A correction by order without its order number is refused by the caller.
"""

from __future__ import annotations

import datetime as dt

from kkt.protocols.ffd import TlvList, Value

from .receipt import NO_VAT

FFD_12 = 4  # tag 1209 code
SELF, BY_ORDER = 0, 1  # tag 1173
KIND_NAMES = {SELF: "самостоятельно", BY_ORDER: "по предписанию"}
NO_NUMBER = "б/н"


def correction_kind(tags: TlvList) -> int:
    """Tag 1173 as sent, or 0 (on the user's own initiative)."""
    for tag, value in tags:
        if tag == 1173 and isinstance(value, int):
            return value
    return SELF


def basis_members(tags: TlvList) -> TlvList:
    """The members of the 1174 the host sent (empty when it sent none)."""
    for tag, value in tags:
        if tag == 1174 and isinstance(value, list):
            return list(value)
    return []


def complete_correction(tags: TlvList, ffd: int, now: dt.datetime, total: int) -> TlvList:
    """``tags`` with 1173, a full 1174 for FFD version code ``ffd`` and, in 1.2, one item
    (1059 is mandatory there) when the host sent none."""
    kind = correction_kind(tags)
    members = basis_members(tags)
    present = {tag for tag, _ in members}
    day = dt.datetime.combine(now.date(), dt.time())
    if ffd < FFD_12 and 1177 not in present:
        members.insert(0, (1177, KIND_NAMES.get(kind, KIND_NAMES[SELF])))
    if 1178 not in present:
        members.append((1178, day))
    if ffd < FFD_12 and 1179 not in present:
        members.append((1179, NO_NUMBER))
    out: TlvList = [(tag, value) for tag, value in tags if tag not in (1173, 1174)]
    out += [(1173, kind), (1174, members)]
    if ffd >= FFD_12 and not any(tag == 1059 for tag, _ in tags):
        out.append(_whole_sum_item(total))
    return out


def _whole_sum_item(total: int) -> tuple[int, Value]:
    """One item for the corrected sum: name, 1 piece (2108 = 0), price = sum, no VAT (the
    correction's tax sums say the same), full settlement (1214 = 4)."""
    body: TlvList = [
        (1030, "Коррекция"),
        (1079, total),
        (1023, 1),
        (2108, 0),
        (1043, total),
        (1199, NO_VAT),
        (1214, 4),
        (1212, 1),
    ]
    return (1059, body)
