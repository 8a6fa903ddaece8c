"""GS1 identifiers: GTIN check digits (GS1 General Specifications §7.9) and serial numbers
(AI 21: up to 20 characters of GS1 character set 82)."""

from __future__ import annotations

import re

GTIN_LENGTHS = (8, 12, 13, 14)
_DIGITS = re.compile(r"[0-9]+")
# GS1 AI encodable character set 82, the characters an AI (21) serial number may use.
SERIAL_PATTERN = re.compile(r"""[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}""")


def gtin_check_digit(body: str) -> int:
    """The mod-10 check digit for the digits before it: weights 3, 1, 3, … from the right."""
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_problem(gtin: str) -> str | None:
    """Why `gtin` is not a valid GTIN-8/12/13/14, or None when it is."""
    if not _DIGITS.fullmatch(gtin):
        return "A GTIN has digits only."
    if len(gtin) not in GTIN_LENGTHS:
        return "A GTIN has 8, 12, 13 or 14 digits."
    if gtin_check_digit(gtin[:-1]) != int(gtin[-1]):
        return "The GTIN's check digit is wrong; check for a mistyped digit."
    return None


def serial_problem(serial: str) -> str | None:
    if not SERIAL_PATTERN.fullmatch(serial):
        return (
            "A serial number has 1 to 20 characters: letters, digits and "
            "!\"%&'()*+,-./:;<=>?_ (GS1 AI 21)."
        )
    return None
