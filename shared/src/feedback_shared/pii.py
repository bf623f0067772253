"""Finding and masking personal data: e-mail addresses, phone numbers and card numbers.

Used by the logging redactor, so no raw contact detail reaches a log line, and by ingest, which masks
Luhn-valid card numbers in feedback text before anything is published.
"""

from __future__ import annotations

import re

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Phone-like runs: an optional +, then 8-15 digits with common separators; not part of a longer token
# such as a UUID or a hex id (no word character or hyphen on either side).
PHONE_RE = re.compile(r"(?<![\w\-])\+?\d[\d\s().\-]{6,}\d(?![\w\-])")
CARD_RE = re.compile(r"(?<!\d)(?:\d[ \-]?){12,18}\d(?!\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mask_card_numbers(text: str) -> str:
    """Replace Luhn-valid 13-19 digit card numbers with a mask keeping the last four digits."""

    def _mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return f"[card ****{digits[-4:]}]"
        return match.group(0)

    return CARD_RE.sub(_mask, text)


def redact(text: str) -> str:
    """Mask cards, e-mails and phone numbers in free text (for logs and notifications)."""
    text = mask_card_numbers(text)
    text = EMAIL_RE.sub("[email]", text)

    def _phone(match: re.Match[str]) -> str:
        found = match.group(0)
        digits = re.sub(r"\D", "", found)
        # A bare run of 8-9 digits is more often an order or date number than a phone number.
        phone_shaped = found.startswith("+") or len(digits) >= 10 or len(digits) != len(found)
        return "[phone]" if 8 <= len(digits) <= 15 and phone_shaped else found

    return PHONE_RE.sub(_phone, text)
