"""Marked goods in the register pool: which registers can sell them, and which requests carry them.

A receipt with a marking code needs a register whose FN check of the code (Shtrikh FF61 ... FF69,
``Register.check_mark``) the driver runs inside the sale.  The emulated ATOL registers cannot:
ATOL's marking commands have no public byte layout (fact sheet ``ofd-cloud-marking.md`` §4.4,
gap 3).  So, within a group:

* **Shtrikh registers take every request**, marked or not;
* **ATOL registers skip marked requests** when the group has a Shtrikh register: they stay queued
  for it (``Storage.claim(..., skip_marked=True)``), in arrival order, however many unmarked
  ones the ATOL registers sell meanwhile;
* in a group with **no register that can sell them**, a marked request is failed by the first
  register that claims it, with ATOL's agent error 4 ("the register cannot make this kind of
  document") naming the group: nothing is sold without its code, and nothing waits forever.

Storage recognises a marked request by its stored body text: the bodies are compact JSON
(`kkt.cloud.jsontext.dumps`), so an item's ``"mark_code":{`` is a key with an object value --
the same text inside a JSON string would have its quotes escaped.  `is_marked` reads the parsed
body and agrees with that test for every body the conversion accepts.
"""

from __future__ import annotations

from typing import Any

# The protocols whose registers the driver can sell marked goods through.
SELLS_MARKED = frozenset({"shtrih"})

# What storage looks for in a stored body (compact JSON: no space after the colon).
MARKED_BODY_TEXT = '"mark_code":{'

AGENT_INVALID = 1  # ATOL agent error 1: the document is invalid
AGENT_IMPOSSIBLE = 4  # ATOL agent error 4: the document type is impossible on this register


def sells_marked(protocol: str) -> bool:
    return protocol in SELLS_MARKED


def is_marked(body: dict[str, Any]) -> bool:
    """Whether any item of the receipt (or correction) carries a ``mark_code`` object."""
    for part in ("receipt", "correction"):
        document = body.get(part)
        items = document.get("items") if isinstance(document, dict) else None
        if isinstance(items, list) and any(
            isinstance(item, dict) and isinstance(item.get("mark_code"), dict) for item in items
        ):
            return True
    return False


def rejected_error(error: Exception) -> dict[str, Any]:
    """The report error of a marked receipt whose code may not be sold (`kkt.MarkRejected`: the
    FN's check or ОИСМ's answer was negative, ОИСМ did not answer, the code was sold before;
    `kkt.BadMarkCode`).  Nothing was charged.  ATOL's own code table for these (driver errors
    401-426) is not public in full, so it is ATOL's agent error 1, invalid document, with the
    driver's words: which item, its code, 2106, what to do."""
    return {"code": AGENT_INVALID, "text": f"marked goods refused: {error}", "type": "agent"}


def cannot_sell_error(register: str, protocol: str, group: str) -> dict[str, Any]:
    """The report error of a marked request claimed in a group with no register that sells it."""
    return {
        "code": AGENT_IMPOSSIBLE,
        "text": (
            f"the receipt has marked goods, and no register of group {group} can sell them: "
            f"{register} is a {protocol} register, and marked goods are sold only through "
            f"{', '.join(sorted(SELLS_MARKED))} registers here; add one to the group or send "
            "the receipt to a group that has one"
        ),
        "type": "agent",
    }
