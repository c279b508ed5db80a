"""Money: minor units from CLDR, half-up rounding, exact allocation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartwheel.money import (
    InvalidMoneyError,
    allocate,
    minor_unit,
    parse_amount,
    percentage_of,
    quantize,
    to_money,
)

D = Decimal


@pytest.mark.parametrize(
    ("currency", "unit"),
    [("USD", D("0.01")), ("JPY", D("1")), ("KWD", D("0.001")), ("BHD", D("0.001"))],
)
def test_minor_unit_comes_from_cldr(currency: str, unit: Decimal) -> None:
    assert minor_unit(currency) == unit


def test_unknown_currency_is_rejected_with_a_code() -> None:
    with pytest.raises(InvalidMoneyError) as info:
        minor_unit("XYZ1")
    assert info.value.code == "INVALID_MONEY"
    assert "ISO 4217" in info.value.message


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.005", "USD", "0.01"),
        ("0.004", "USD", "0.00"),
        ("2.675", "USD", "2.68"),
        ("149.5", "JPY", "150"),
        ("149.4", "JPY", "149"),
        ("1.2345", "KWD", "1.235"),
        ("1.2344", "BHD", "1.234"),
    ],
)
def test_quantize_rounds_half_up_to_the_minor_unit(
    amount: str, currency: str, expected: str
) -> None:
    assert str(quantize(D(amount), currency)) == expected


def test_percentage_and_to_money() -> None:
    assert percentage_of(D("19.99"), D("15"), "USD") == D("3.00")  # 2.9985
    assert percentage_of(D("1999"), D("15"), "JPY") == D("300")  # 299.85
    assert percentage_of(D("1.999"), D("15"), "KWD") == D("0.300")  # 0.29985
    assert to_money(D("5"), "KWD") == {"amount": "5.000", "currencyCode": "KWD"}
    assert to_money(D("5"), "JPY") == {"amount": "5", "currencyCode": "JPY"}


def test_parse_amount_rejects_garbage() -> None:
    assert parse_amount("12.50") == D("12.50")
    for bad in ("twelve", "NaN", "Infinity"):
        with pytest.raises(InvalidMoneyError):
            parse_amount(bad)


def test_allocate_hands_leftover_cents_to_largest_remainders() -> None:
    # 10.00 over three equal lines: 3.34 + 3.33 + 3.33, earliest first on ties.
    assert allocate(D("10"), [D("5"), D("5"), D("5")], "USD") == [D("3.34"), D("3.33"), D("3.33")]
    # 100 JPY over 1:2 → 33.33 / 66.67 → 33 / 67.
    assert allocate(D("100"), [D("100"), D("200")], "JPY") == [D("33"), D("67")]
    assert allocate(D("1"), [D("1"), D("1"), D("1")], "KWD") == [D("0.334"), D("0.333"), D("0.333")]
    assert allocate(D("5"), [D("0"), D("0")], "USD") == [D("0.00"), D("0.00")]
    assert allocate(D("0"), [D("3")], "USD") == [D("0.00")]
    with pytest.raises(InvalidMoneyError):
        allocate(D("-1"), [D("1")], "USD")


@given(
    total_units=st.integers(min_value=0, max_value=10**7),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30),
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_allocate_parts_sum_exactly_and_never_exceed_their_weight(
    total_units: int, weights: list[int], currency: str
) -> None:
    unit = minor_unit(currency)
    ws = [D(w) * unit for w in weights]
    total = min(D(total_units) * unit, sum(ws, D(0)))
    parts = allocate(total, ws, currency)
    assert sum(parts, D(0)) == (total if sum(ws, D(0)) > 0 else 0)
    assert all(p >= 0 for p in parts)
    assert all(p <= w for p, w in zip(parts, ws, strict=True))
    assert all(p == quantize(p, currency) for p in parts)
