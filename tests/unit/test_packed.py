"""`packed` payloads cross a pickle round trip (what Ray does to call arguments and results) as equal objects of the
same types, not as the wrapper; cloudpickle (Ray's serializer) takes the wrapper as one object."""
from __future__ import annotations

import pickle
from decimal import Decimal

import ray.cloudpickle as cloudpickle

from actors.packed import Packed, packed
from core.asset_order import ExchangeFill
from core.sender_messages import OrderDone, SenderFill
from core.side import Side


def executions() -> list:
    return [SenderFill(1, "b1", "b1.BTCUSDC.0", "BTCUSDC", Side.BUY,
                       ExchangeFill(7, Decimal("60000.01"), Decimal("0.00123"), Decimal("0.00000123"), "BTC",
                                    1_700_000_000_000, False)),
            OrderDone(2, "b1", "b1.BTCUSDC.0", "BTCUSDC", Side.BUY, "FILLED", Decimal("0.00123"))]


def test_a_packed_payload_arrives_as_the_payload_itself():
    value = {"list": executions(), "tuple": (Decimal("1.10"), None), "levels": [(Decimal("2.5"), Decimal("3"))]}
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(packed(value)))
        assert not isinstance(back, Packed)
        assert back == value and type(back["tuple"]) is tuple and str(back["tuple"][0]) == "1.10"


def test_a_packed_payload_is_one_bytes_string_to_cloudpickle():
    value = executions() * 50
    plain, wrapped = cloudpickle.dumps(value), cloudpickle.dumps(packed(value))
    assert pickle.loads(wrapped) == pickle.loads(plain) == value
    # The wrapper's reduction is (pickle.loads, (bytes,)): the payload is inside one bytes object.
    reconstructor, (blob,) = Packed(value).__reduce__()
    assert reconstructor is pickle.loads and isinstance(blob, bytes) and pickle.loads(blob) == value
