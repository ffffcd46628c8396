"""Soaks: long runs that hunt for a broken invariant rather than measure speed.

Run by name, ``kkt bench --soak NAME [--quick]``, one module each: `lossy` (exactly-once selling
over a lossy line), `crash` (kill -9 of the emulator process under a selling driver),
`concurrency` (clients on their own connections to one register) and `fuzz` (garbage at the
emulator and at the driver), `cloud_crash` (``--soak cloud-crash``: kill -9 of ``kkt cloud
serve`` under 20 receipts/s); `common` holds what they share.

Each soak is bounded in count and time, prints its figures first and then raises
`AssertionError` naming the broken invariant, so ``kkt bench`` reports it failed.  The sizes are
each module's constants, which tests shrink.
"""
