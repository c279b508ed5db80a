"""Money: Decimal amounts in one currency, rounded to that currency's minor unit.

Every amount that reaches a buyer goes through this module. Amounts are `Decimal`
throughout (never floats); the number of decimals of a currency comes from CLDR via
Babel (`JPY` 0, `USD` 2, `KWD` 3) and rounding is half-up, as merchants and tax
authorities expect ("0.005" → "0.01"). Allocation of one amount over several lines uses
the largest-remainder method in minor units, so the parts always add up to the whole,
to the last cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import get_currency_precision, is_currency

from cartwheel.errors import InvalidRequestError
from functions_sdk.snapshot import Money

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class InvalidMoneyError(InvalidRequestError):
    """An amount or currency code that cannot be used as money (HTTP 400)."""

    code = "INVALID_MONEY"


@lru_cache(maxsize=512)
def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency` (``Decimal("0.01")`` for USD, ``1`` for JPY,
    ``0.001`` for KWD), from CLDR via Babel.

    Raises `InvalidMoneyError` for a code that is not an ISO 4217 currency.
    """
    if not is_currency(currency):
        raise InvalidMoneyError(
            f"Unknown currency code {currency!r}: use an ISO 4217 code such as USD, EUR or JPY."
        )
    return Decimal(1).scaleb(-get_currency_precision(currency))


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round `amount` half-up to the minor unit of `currency`."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def parse_amount(raw: str | int | Decimal, *, what: str = "amount") -> Decimal:
    """Parse a decimal string (``"12.50"``) into a finite `Decimal`.

    Raises `InvalidMoneyError` naming `what` when the value is not a finite number.
    """
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
    except InvalidOperation:
        raise InvalidMoneyError(
            f"{what} must be a decimal string such as '12.50', got {raw!r}."
        ) from None
    if not value.is_finite():
        raise InvalidMoneyError(f"{what} must be a finite number, got {raw!r}.")
    return value


def from_money(money: Money) -> Decimal:
    """The amount of a snapshot `Money` object."""
    return parse_amount(money["amount"])


def to_money(amount: Decimal, currency: str) -> Money:
    """A snapshot `Money` object, rounded to the currency's minor unit."""
    return {"amount": str(quantize(amount, currency)), "currencyCode": currency}


def format_amount(amount: Decimal, currency: str) -> str:
    """The amount as a plain decimal string with exactly the currency's decimals."""
    return str(quantize(amount, currency))


def percentage_of(amount: Decimal, percentage: Decimal, currency: str) -> Decimal:
    """`percentage` % of `amount`, rounded half-up to the minor unit."""
    return quantize(amount * percentage / HUNDRED, currency)


def allocate(total: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split `total` over `weights` proportionally, in minor units, so that the parts sum
    exactly to `total` (rounded to the minor unit).

    Largest-remainder method: every part gets its floor, then the leftover minor units go
    one each to the parts with the largest fractional remainders (ties: earliest part).
    A part never exceeds its weight when `total` ≤ the sum of the weights, which is what
    makes an order discount allocated over lines never push a line below zero. Zero
    weights get nothing; if every weight is zero the result is all zeros.

    Raises `InvalidMoneyError` when `total` or a weight is negative.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise InvalidMoneyError("allocate() takes a non-negative total and weights.")
    unit = minor_unit(currency)
    total_units = int((quantize(total, currency) / unit).to_integral_value())
    weight_sum = sum(weights, ZERO)
    if weight_sum == 0 or total_units == 0:
        return [ZERO * unit for _ in weights]
    exact = [Decimal(total_units) * w / weight_sum for w in weights]
    floors = [int(e.to_integral_value(rounding=ROUND_DOWN)) for e in exact]
    leftover = total_units - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:leftover]:
        floors[i] += 1
    return [Decimal(units) * unit for units in floors]
