"""The JSON codec: each kind of bad frame maps to its reason code, canonical form and frames round-trip, the models
are strict and closed, and the fast paths (orjson, the ACK template) give exactly what the plain definitions give."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import (Decoded, FrameError, _dumps_sorted_json, ack_frame, body_dict, canonical, decode,
                            dumps_sorted, encode, header, parse_frame, peek)
from protocol.envelope import Body
from protocol.indexmaker_messages import (INDEXMAKER_REPORTS, INDEXMAKER_REQUESTS, CancelIndexOrderReport,
                                          IndexOrderFill, InvoiceLine, MintInvoice, NewIndexOrder,
                                          NewIndexOrderReport)
from protocol.reason_codes import NakCode, ReasonCode
from protocol.session_messages import CLIENT_SESSION_BODIES, SERVER_SESSION_BODIES, Ack, Logon, Nak
from protocol.signature import Signer, signer_matches

ADDRESS = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"
REQUESTS = {**CLIENT_SESSION_BODIES, **INDEXMAKER_REQUESTS}
REPORTS = {**SERVER_SESSION_BODIES, **INDEXMAKER_REPORTS}
TS = "2025-10-01T12:00:00.000Z"


def order_raw(**overrides: object) -> dict:
    raw = {"standard_header": {"msg_type": "NewIndexOrder", "sender_comp_id": "CLIENT", "target_comp_id": "SERVER",
                               "seq_num": 3, "timestamp": TS},
           "chain_id": 8453, "address": ADDRESS, "client_order_id": "ORD-1", "symbol": "SY100", "side": "1",
           "amount": "250.5"}
    raw.update(overrides)
    return raw


def code_of(fn, *args) -> NakCode:  # noqa: ANN001
    with pytest.raises(FrameError) as info:
        fn(*args)
    return info.value.code


# --- parse -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame,code", [
    (b'{"a":1}', NakCode.BAD_JSON),  # binary frame
    ("{" + '"k":"' + "x" * 600 + '"}', NakCode.TOO_LARGE),
    ('{"a":1', NakCode.BAD_JSON),
    ("[1,2]", NakCode.BAD_JSON),
    ('"text"', NakCode.BAD_JSON),
    ('{"a":1,"a":2}', NakCode.BAD_JSON),
    ('{"a":NaN}', NakCode.BAD_JSON),
    ('{"a":Infinity}', NakCode.BAD_JSON),
    ("[" * 5000 + "]" * 5000, NakCode.TOO_LARGE),
    ("", NakCode.BAD_JSON),
])
def test_parse_maps_each_bad_frame_to_its_code(frame: str | bytes, code: NakCode) -> None:
    assert code_of(parse_frame, frame, 512) is code


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    frame = '{"k":"' + "é" * 300 + '"}'  # 308 characters, 608 bytes
    assert len(frame) < 512 < len(frame.encode())
    assert code_of(parse_frame, frame, 512) is NakCode.TOO_LARGE


def test_deep_nesting_is_refused_before_the_parser_recurses() -> None:
    # (without the guard this frame crashes the interpreter when the recursion limit is raised, as under hypothesis)
    assert code_of(parse_frame, "[" * 100_000 + "]" * 100_000, 10**6) is NakCode.BAD_JSON
    nested = '{"a":' * 40 + "1" + "}" * 40
    assert parse_frame(nested, 10**6)["a"]["a"]["a"]
    assert code_of(parse_frame, '{"a":' * 65 + "1" + "}" * 65, 10**6) is NakCode.BAD_JSON


# --- decode ------------------------------------------------------------------------------------------------------


def test_a_valid_request_decodes_into_envelope_and_body() -> None:
    d = decode(order_raw(), REQUESTS)
    assert d.msg_type == "NewIndexOrder" and d.seq_num == 3
    assert d.envelope.user.key == f"8453:{ADDRESS}"
    assert isinstance(d.body, NewIndexOrder) and d.body.amount == Decimal("250.5")


@pytest.mark.parametrize("mutate,code", [
    (lambda r: r.update(standard_header={**r["standard_header"], "msg_type": "Bogus"}), NakCode.UNKNOWN_MSG_TYPE),
    (lambda r: r.pop("standard_header"), NakCode.BAD_FIELD),
    (lambda r: r.update(standard_header={**r["standard_header"], "msg_type": 7}), NakCode.BAD_FIELD),
    (lambda r: r.pop("amount"), NakCode.BAD_FIELD),
    (lambda r: r.update(amount=250.5), NakCode.BAD_FIELD),
    (lambda r: r.update(amount="2.5e2"), NakCode.BAD_FIELD),
    (lambda r: r.update(extra="x"), NakCode.BAD_FIELD),
    (lambda r: r.update(address=ADDRESS.lower()), NakCode.BAD_FIELD),
    (lambda r: r.update(chain_id="8453"), NakCode.BAD_FIELD),
    (lambda r: r.update(chain_id=-1), NakCode.BAD_FIELD),
    (lambda r: r.update(side="bid"), NakCode.BAD_FIELD),
    (lambda r: r.update(standard_header={**r["standard_header"], "seq_num": 2**32}), NakCode.BAD_FIELD),
    (lambda r: r.update(standard_header={**r["standard_header"], "seq_num": True}), NakCode.BAD_FIELD),
    (lambda r: r.update(standard_header={**r["standard_header"], "extra": 1}), NakCode.BAD_FIELD),
    (lambda r: r.update(standard_trailer={"signature": ["0x12"]}), NakCode.BAD_FIELD),
    (lambda r: r.update(standard_trailer={"signature": [], "nonce": 1}), NakCode.BAD_FIELD),
])
def test_decode_maps_each_bad_field_to_its_code(mutate, code: NakCode) -> None:  # noqa: ANN001
    raw = order_raw()
    mutate(raw)
    assert code_of(decode, raw, REQUESTS) is code


def test_a_refused_frame_still_names_what_could_be_read_of_it() -> None:
    with pytest.raises(FrameError) as info:
        decode(order_raw(amount="oops"), REQUESTS)
    assert (info.value.seq_num, info.value.chain_id, info.value.address) == (3, 8453, ADDRESS)
    assert "amount" in info.value.text
    assert peek({"standard_header": {"seq_num": "7"}, "chain_id": 1.5, "address": "junk"}) == \
        (0, 0, "0x0000000000000000000000000000000000000000")


# --- canonical form and encoding ---------------------------------------------------------------------------------


def test_canonical_form_is_sorted_compact_and_leaves_the_trailer_out() -> None:
    raw = order_raw(standard_trailer={"public_key": [], "signature": ["0x" + "00" * 65]})
    text = canonical(raw).decode()
    assert "standard_trailer" not in text and " " not in text
    assert json.loads(text) == {k: v for k, v in raw.items() if k != "standard_trailer"}
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
                     max_leaves=15)


@settings(max_examples=400, deadline=None)
@given(_JSON)
def test_the_fast_canonical_encoder_gives_the_bytes_of_the_spec_definition(value: object) -> None:
    assert dumps_sorted(value) == _dumps_sorted_json(value)


def test_the_ack_template_is_what_encode_gives() -> None:
    assert ack_frame("SERVER", "CLIENT", 7, TS, 8453, ADDRESS, 5) == \
        encode(header("ACK", "SERVER", "CLIENT", 7, TS), 8453, ADDRESS, Ack(ref_seq_num=5), None)


def _report_bodies() -> list[Body]:
    return [
        Ack(ref_seq_num=4),
        Nak(ref_seq_num=4, reason_code=NakCode.BAD_SEQUENCE, reason="seq 4, expected 9", expected_seq_num=9),
        NewIndexOrderReport(status="new", client_order_id="C-1"),
        NewIndexOrderReport(status="rejected", client_order_id="C-1", reason_code=ReasonCode.UNKNOWN_INDEX,
                            reason="unknown index 'SY999'"),
        CancelIndexOrderReport(status="canceled", client_order_id="C-1", cancelled_amount=Decimal("12.5"),
                               collateral_remaining=Decimal("0"), collateral_engaged=Decimal("3")),
        IndexOrderFill(client_order_id="C-1", status="in progress", filled_quantity=Decimal("0.0000990099"),
                       collateral_spent=Decimal("20.21"), collateral_remaining=Decimal("230.29"),
                       fill_rate=Decimal("0.080678")),
        MintInvoice(client_order_id="C-1", symbol="SY100", total_amount=Decimal("250.5"),
                    collateral_spent=Decimal("248.6"), amount_cancelled=Decimal("0"),
                    amount_returned=Decimal("1.9"), assets_value=Decimal("248.1"), exchange_fee=Decimal("0.5"),
                    routing_fee=Decimal("0.25"), filled_quantity=Decimal("0.00123"),
                    minted_quantity=Decimal("0.00123"), fill_rate=Decimal("0.992415"),
                    lines=[InvoiceLine(symbol="BTC", quantity=Decimal("0.0008"), average_price=Decimal("64000.5"),
                                       value=Decimal("51.2004"), fee=Decimal("0.05"), lot_ids=["88120001"])],
                    mint_tx="0x" + "ab" * 32, timestamp=TS),
    ]


@pytest.mark.parametrize("body", _report_bodies(), ids=lambda b: b.MSG_TYPE)
@pytest.mark.parametrize("signed", [False, True])
def test_every_server_frame_decodes_back_to_the_same_body(body: Body, signed: bool) -> None:
    signer = Signer.generate() if signed else None
    frame = encode(header(body.MSG_TYPE, "SERVER", "CLIENT", 9, TS), 8453, ADDRESS, body, signer)
    d: Decoded = decode(parse_frame(frame, 1 << 20, max_containers=1000), REPORTS)
    assert d.body == body and body_dict(d.body) == body_dict(body)
    assert (d.envelope.standard_header.sender_comp_id, d.seq_num) == ("SERVER", 9)
    if signer is not None:
        assert signer_matches(canonical(d.raw), d.envelope.signature, signer.address)
        assert d.envelope.standard_trailer.public_key == [signer.public_key_hex]
    else:
        assert d.envelope.signature is None


def test_a_rejection_needs_a_reason_code_and_only_a_rejection_has_one() -> None:
    with pytest.raises(ValueError):
        NewIndexOrderReport(status="rejected", client_order_id="C-1")
    with pytest.raises(ValueError):
        NewIndexOrderReport(status="new", client_order_id="C-1", reason_code=ReasonCode.UNKNOWN_INDEX)
    with pytest.raises(ValueError):
        IndexOrderFill(client_order_id="C", status="rejected", filled_quantity=Decimal(0),
                       collateral_spent=Decimal(0), collateral_remaining=Decimal(0), fill_rate=Decimal(0))


def test_an_invoice_that_does_not_add_up_is_refused() -> None:
    fields = body_dict(_report_bodies()[-1])
    fields["amount_returned"] = "2"
    with pytest.raises(ValueError):
        MintInvoice.model_validate(fields)


def test_reason_codes_are_a_closed_set_on_the_wire() -> None:
    frame = encode(header("NAK", "SERVER", "CLIENT", 0, TS), 8453, ADDRESS,
                   Nak(ref_seq_num=1, reason_code=NakCode.BAD_JSON, reason="x"), None)
    raw = parse_frame(frame, 1 << 20)
    raw["reason_code"] = "SOMETHING_ELSE"
    with pytest.raises(FrameError):
        decode(raw, REPORTS)


def test_logon_resume_point_is_optional_but_typed() -> None:
    assert Logon().last_server_seq_num is None
    with pytest.raises(ValueError):
        Logon.model_validate({"last_server_seq_num": "3"})


# --- the fast parse ------------------------------------------------------------------------------------------------

_KEY = st.sampled_from(["a", "b", "a:b", ":", "msg_type", "\\u0061", "\\"]) | _TEXT
_VALUE_TEXT = st.sampled_from(["1", "-0", "1.5", "1e400", "true", "null", '"x:y"', '"\\u003a"', '"\\""',
                               "NaN", "99999999999999999999", '"::"', "[]", "{}"])


@st.composite
def _json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON-ish texts: objects whose keys may repeat, values with colons (plain and escaped), numbers orjson and the
    json module may read differently, and now and then a broken token."""
    n = draw(st.integers(0, 4))
    parts = []
    for _ in range(n):
        key = json.dumps(draw(_KEY), ensure_ascii=draw(st.booleans()))
        if depth < 2 and draw(st.booleans()):
            value = draw(_json_texts(depth + 1))
        else:
            value = draw(_VALUE_TEXT | _TEXT.map(json.dumps))
        parts.append(f"{key}{draw(st.sampled_from([':', ' : ']))}{value}")
    text = "{" + ",".join(parts) + "}"
    return text if not draw(st.integers(0, 20)) == 0 else text[:-1]


@settings(max_examples=1500, deadline=None)
@given(_json_texts())
def test_the_fast_parse_takes_a_frame_only_when_it_is_what_the_strict_parser_gives(text: str) -> None:
    from protocol.codec import _DECODER, _fast_parse  # noqa: PLC0415

    fast = _fast_parse(text)
    if fast is None:
        return
    assert fast == _DECODER.decode(text)  # the strict parser takes it too (no duplicate, no NaN) and agrees


def test_the_fast_parse_is_used_for_ordinary_frames_and_never_for_duplicates() -> None:
    from protocol.codec import _fast_parse  # noqa: PLC0415

    text = json.dumps(order_raw(), separators=(",", ":"))
    assert _fast_parse(text) == order_raw()
    assert _fast_parse('{"a":"x","a":":"}') is None
    assert _fast_parse('{"a":99999999999999999999}') is None  # orjson would read a float
    assert _fast_parse('{"a":"x","a":"\\u003a"}') is None  # escaped colons could hide a duplicate: not taken
    assert _fast_parse('{"a":{"b":1},"a":2}') is None
    assert code_of(parse_frame, '{"a":{"b":1},"a":2}', 512) is NakCode.BAD_JSON
