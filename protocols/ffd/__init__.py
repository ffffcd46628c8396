"""FFD fiscal data: the TLV attribute format, the tag dictionary, fiscal signs, QR codes, RNM/INN.

* `tags` -- `TAGS` (tag → `TagSpec`: wire type, length limits, names), the document types
  (`DocumentType`), a receipt's `Payments` and the tags the FN forms itself (`fn_formed_tags`);
* `status` -- the FN's life phase, warning flags and registration work modes;
* `tlv` -- `encode_tlv` / `decode_tlv` between ``[(tag, value), …]`` lists and bytes;
* `sign` -- the 6-byte tag-1077 form of the fiscal sign (ФПД);
* `qr` -- the receipt QR string (tag 1196);
* `ident` -- INN check digits and the RNM (tag 1037) check digits;
* `view` -- documents as JSON data (`tlv_to_json`) and as named rows for people;
* `marking` -- marking codes (КМ): `parse_mark_code`, the 2115 `control_code`, the tag enums.

Facts come from the fact sheet ``fn-ffd-ofd.md`` §1–§5 and §8; each module says where it chose
something the sheet leaves open.
"""

from .ident import inn_is_valid, make_rnm, rnm_check_digits, rnm_is_valid
from .marking import (
    ItemCheck,
    MarkCode,
    MarkCodeType,
    MarkingCodeError,
    Measure,
    PlannedStatus,
    control_code,
    parse_mark_code,
)
from .qr import QrData, QrError, parse_qr, qr_data_of_document, qr_of_document, qr_string
from .sign import fiscal_sign_from_tlv, fiscal_sign_tlv
from .status import FnWarning, LifePhase, WorkMode
from .tags import (
    DOCUMENT_TAGS,
    FN_FORMED_TAGS_11,
    FN_FORMED_TAGS_12,
    TAGS,
    DocumentType,
    Payments,
    TagSpec,
    TagType,
    fn_formed_tags,
)
from .tlv import (
    TlvError,
    TlvList,
    Value,
    decode_tlv,
    encode_tlv,
    encode_tlv_item,
    find,
    find_all,
)
from .view import DOCUMENT_NAMES, rows, tlv_to_json

__all__ = [
    "DOCUMENT_NAMES",
    "DOCUMENT_TAGS",
    "FN_FORMED_TAGS_11",
    "FN_FORMED_TAGS_12",
    "TAGS",
    "DocumentType",
    "FnWarning",
    "ItemCheck",
    "LifePhase",
    "MarkCode",
    "MarkCodeType",
    "MarkingCodeError",
    "Measure",
    "Payments",
    "PlannedStatus",
    "QrData",
    "QrError",
    "TagSpec",
    "TagType",
    "TlvError",
    "TlvList",
    "Value",
    "WorkMode",
    "control_code",
    "decode_tlv",
    "encode_tlv",
    "encode_tlv_item",
    "find",
    "find_all",
    "fiscal_sign_from_tlv",
    "fiscal_sign_tlv",
    "fn_formed_tags",
    "inn_is_valid",
    "make_rnm",
    "parse_mark_code",
    "parse_qr",
    "qr_data_of_document",
    "qr_of_document",
    "qr_string",
    "rnm_check_digits",
    "rnm_is_valid",
    "rows",
    "tlv_to_json",
]
