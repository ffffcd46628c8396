"""The fact sheet's ATOL Online examples (ofd-cloud-marking.md §2.8), as bodies the tests edit."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

V4_SELL = """{"external_id":"17052917561851307","timestamp":"01.02.2019 13:45:00",
 "service":{"callback_url":"http://testtest"},
 "receipt":{"client":{"email":"kkt@kkt.ru"},
  "company":{"email":"chek@romashka.ru","sno":"osn","inn":"1234567891",
             "payment_address":"http://magazin.ru/"},
  "items":[{"name":"колбаса Клинский Брауншвейгская с/к в/с","price":1000.00,"quantity":0.3,
            "sum":300.00,"measurement_unit":"кг","payment_method":"full_payment",
            "payment_object":"commodity","vat":{"type":"vat20"}},
           {"name":"яйцо Окское куриное С0 белое","price":100.00,"quantity":1.0,"sum":100.00,
            "measurement_unit":"Упаковка 10 шт.","payment_method":"full_payment",
            "payment_object":"commodity","vat":{"type":"vat10"}}],
  "payments":[{"type":1,"sum":400.0}],"vats":[{"type":"vat20","sum":50.00},
  {"type":"vat10","sum":9.09}],"total":400.0}}"""

V5_SELL = """{"external_id":"order-1001","timestamp":"01.09.2025 13:45:00",
 "service":{"callback_url":"https://shop.example/atol/cb"},
 "receipt":{"client":{"email":"kkt@kkt.ru"},
  "company":{"email":"chek@romashka.ru","sno":"osn","inn":"1234567891",
             "payment_address":"https://magazin.ru/"},
  "items":[{"name":"Молоко 3,2% 930 мл","price":109.99,"quantity":1,"sum":109.99,"measure":0,
            "payment_method":"full_payment","payment_object":33,"vat":{"type":"vat10","sum":10.00},
            "mark_processing_mode":"0",
            "mark_code":{"gs1m":"MDE0NDk0NTUwNDM1MzA2ODIxUVhZWFNBTEdMTVlRUR05MUVFMDYdOTJZV0NY"}},
           {"name":"Пакет","price":9.99,"quantity":1,"sum":9.99,"measure":0,
            "payment_method":"full_payment","payment_object":1,"vat":{"type":"vat20","sum":1.67}}],
  "payments":[{"type":1,"sum":119.98}],"total":119.98,"internet":true}}"""

V4_CORRECTION = """{"external_id":"corr-1","timestamp":"01.02.2019 13:45:00",
 "correction":{"company":{"sno":"osn","inn":"1234567891","payment_address":"http://magazin.ru/"},
  "correction_info":{"type":"instruction","base_date":"20.01.2019","base_number":"1175",
                     "base_name":"Предписание"},
  "payments":[{"type":0,"sum":150.00},{"type":1,"sum":50.5}],
  "vats":[{"type":"vat20","sum":33.42}],"cashier":"Иванов"}}"""

# The §2.8 report: what ATOL answers for a done receipt (A4 p. 36).
V4_REPORT = """{"uuid":"2ea26f17-0884-4f08-b120-306fc096a58f","error":null,"status":"done",
 "payload":{"total":1598,"fns_site":"www.nalog.ru","fn_number":"1110000100238211",
  "shift_number":23,"receipt_datetime":"12.04.2017 20:16:00","fiscal_receipt_number":6,
  "fiscal_document_number":133,"ecr_registration_number":"0000111118041361",
  "fiscal_document_attribute":3449555941},
 "timestamp":"12.04.2017 20:15:08","group_code":"MyCompany_MyShop","daemon_code":"prod-agent-1",
 "device_code":"KSR13.00-1-11","external_id":"TRF10601_1","callback_url":""}"""


def body(text: str) -> dict[str, Any]:
    """A fresh, editable copy of an example with exact numbers."""
    return copy.deepcopy(json.loads(text, parse_float=Decimal))


def v5_unmarked() -> dict[str, Any]:
    """The v5 example without its marking fields (payment object 1 instead of 33)."""
    data = body(V5_SELL)
    item = data["receipt"]["items"][0]
    del item["mark_code"], item["mark_processing_mode"]
    item["payment_object"] = 1
    return data
