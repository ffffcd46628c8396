"""The ATOL Online v4/v5 layer: request bodies in, `Order`s, receipts and reports out.

Pure: no storage and no HTTP objects; the app calls these and answers what they return or raise.
"""

from .convert import (
    CorrectionArgs,
    body_json,
    fingerprint,
    load_body,
    order_correction,
    order_receipt,
    problems_of,
    to_order,
    to_order_converted,
)
from .errors import TABLE, ApiError, ErrorKind, atol_time
from .report import accepted_json, report_json

__all__ = [
    "TABLE",
    "ApiError",
    "CorrectionArgs",
    "ErrorKind",
    "accepted_json",
    "atol_time",
    "body_json",
    "fingerprint",
    "load_body",
    "order_correction",
    "order_receipt",
    "problems_of",
    "report_json",
    "to_order",
    "to_order_converted",
]
