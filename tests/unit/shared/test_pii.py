from __future__ import annotations

import pytest

from feedback_shared.pii import luhn_valid, mask_card_numbers, redact


@pytest.mark.parametrize("number", ["4111111111111111", "5500 0000 0000 0004", "3400-0000-0000-009"])
def test_luhn_valid_card_numbers_are_masked(number: str) -> None:
    masked = mask_card_numbers(f"they charged my card {number} twice")
    digits = number.replace(" ", "").replace("-", "")
    assert digits not in masked.replace(" ", "").replace("-", "")
    assert f"[card ****{digits[-4:]}]" in masked


def test_numbers_failing_luhn_are_kept() -> None:
    text = "order 4111111111111112 is late"
    assert not luhn_valid("4111111111111112")
    assert mask_card_numbers(text) == text


def test_redact_masks_email_and_phone_but_keeps_words() -> None:
    out = redact("Write to jane.doe@example.com or call +994 50 123 45 67, order 12 arrived late")
    assert "jane.doe@example.com" not in out
    assert "123 45 67" not in out
    assert "[email]" in out and "[phone]" in out
    assert "order 12 arrived late" in out


def test_ids_are_not_mistaken_for_phone_numbers() -> None:
    text = "entry_id=12345678-1234-5b09-8666-ed4a6d6df20b event_id=7954ee4a-1234-5678-8caf-de43decf7fd3 order 20261124"
    assert redact(text) == text
