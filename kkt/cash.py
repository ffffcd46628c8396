"""What became of a cash in or cash out: the cash in the drawer decides, not the answer.

A cash operation forms no fiscal document for the FN's archive to settle it by (`kkt.settle`),
and its answer may not be its own: on ATOL a task is named only by its TID, and another program
sharing the register -- reconnecting, sending Abort before each document, never acknowledging,
walking TIDs 01..DF -- can leave its own result under the TID our ``Req`` asks for after a lost
reply: a refusal for a deposit made (the caller would put the money in twice), or a success for
one never run.  So the drawer is read before and after the command, always (one query each side;
cash operations are rare), and judges:

* moved by the sum: done, whatever the answer said (a disagreeing answer is logged);
* not moved: not done -- the command's own error, or `CashNotMoved` for a "success";
* anything else (another program moved cash meanwhile, or the drawer could not be read): it
  raises `OutcomeUnknown` with both figures.

The command itself is never sent again.  The caller holds the register's lock.
"""

from __future__ import annotations

import logging

from kkt.protocols.errors import ProtocolError

from .errors import CannotSend, CashNotMoved, KktError, OutcomeUnknown
from .vendors.base import Device

log = logging.getLogger("kkt.register")

# The drawer is a query: a read whose answer the line spoiled -- or another program's task took
# (on ATOL a refusal 66h that was not ours) -- is read again, at most this many times.
DRAWER_TRIES = 3
_CHECK = "check the drawer (`kkt cash`, or an X report) before repeating"


def move_cash(device: Device, amount: int, *, deposit: bool) -> None:
    """Put ``amount`` kopecks into the drawer (``deposit``) or take them out, once, and say by
    the drawer what happened (see the module docstring)."""
    what = "cash in" if deposit else "cash out"
    if amount <= 0:
        # A drawer that did not move could not tell a deposit of nothing from a lost one.
        raise CannotSend(f"{what} of {amount} kopecks: give a sum above zero; nothing was sent")
    change = amount if deposit else -amount
    before = _drawer(device)  # fails alone: nothing was sent
    failure: KktError | ProtocolError | None = None
    try:
        (device.cash_in if deposit else device.cash_out)(amount)
    except CannotSend:
        raise  # refused before anything went out
    except (KktError, ProtocolError) as error:
        failure = error
    said = f"its answer was a failure ({failure})" if failure else "it answered success"
    try:
        after = _drawer(device)
    except (KktError, ProtocolError) as error:
        raise OutcomeUnknown(
            f"{what} of {amount} kopecks: {said}, and the drawer could not be read afterwards "
            f"({error}); it held {before} kopecks before: {_CHECK} -- if it holds "
            f"{before + change}, the {what} was done"
        ) from error
    moved = after - before
    # A reading is the drawer's true cash: a register refuses to pay out cash it does not hold
    # (Shtrih 46h, ATOL 98h: the fact sheets' error tables), so a drawer is never below zero and
    # 0 -> 0 is "not moved".  The emulator lets a cash return drive it below zero and reads 0
    # there: a deposit from that 0 shows only what lifts the drawer above zero -- done, as
    # nothing else (barring another program) could lift it.
    if moved == change or (deposit and before == 0 and 0 < after < amount):
        if failure is not None:
            log.warning(
                "%s of %d kopecks: the answer was a failure (%s), yet the drawer moved from %d "
                "to %d: done (the answer was not this command's)",
                what,
                amount,
                failure,
                before,
                after,
            )
        return
    if moved == 0:
        if failure is not None:
            raise failure
        raise CashNotMoved(
            f"{what} of {amount} kopecks: the register reports success, but the drawer still "
            f"holds {before} kopecks -- the answer was not this command's; nothing was put in "
            f"or taken out, it is safe to repeat the {what}"
        )
    raise OutcomeUnknown(
        f"{what} of {amount} kopecks: {said}, and the drawer moved from {before} to {after} "
        f"kopecks -- by {moved}, not {change} (another program moved cash meanwhile?): {_CHECK}"
    )


def _drawer(device: Device) -> int:
    """The cash in the drawer, read again after a failure (`DRAWER_TRIES` at most): a query."""
    for attempt in range(1, DRAWER_TRIES + 1):
        try:
            return device.cash_in_drawer()
        except CannotSend:
            raise
        except (KktError, ProtocolError) as failure:
            if attempt == DRAWER_TRIES:
                raise
            log.info("the drawer's read failed (%s); reading again", failure)
    raise AssertionError("unreachable")
