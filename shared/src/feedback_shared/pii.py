"""Finding and masking personal data: e-mail addresses, phone numbers and card numbers.

Used by the logging redactor, so no raw contact detail reaches a log line, and by ingest, which masks
Luhn-valid card numbers in feedback text before anything is published.

Every scan here runs in time linear in the text, whatever the text: log lines and feedback are
attacker-controlled, and a pattern that backtracks turns one crafted comment into a stalled worker.
So no pattern nests a quantifier over optional separators. Runs are consumed possessively (``*+``,
``++``, Python 3.11) and only from the start of a run (a look-behind), and the choices a backtracking
pattern would make (where a phone number ends, which digits form a card) are made afterwards, once
per run: the card windows of all digit runs at once, as bit sets in big ints (``_card_regions``).
Redacting 100,000 characters of any repeated pattern takes tens of milliseconds; only each card
actually masked adds Python work (tens of microseconds).

Card numbers
    A *digit group sequence* is a run of digit groups joined by separators: one to eight whitespace
    characters (spaces, tabs, newlines), or a single ``-`` or ``.`` (or a Unicode dash) with up to two
    spaces or tabs on each side. Every window of whole consecutive groups holding 13-19 digits is
    Luhn-checked, so a card typed as ``4111 1111 1111 1111``, ``4111-1111-1111-1111``,
    ``4111.1111.1111.1111``, ``4111  1111\\t1111 1111`` or glued after an order number (``order 12345
    4111 1111 1111 1111``) is found. Valid windows that overlap are masked as one; a CVV or expiry date
    written right after the number (``123``, ``12/27``, ``exp 12/27 cvv 123``) is masked with it. The
    mask keeps the last four digits of the most card-like valid window (16 digits first, then 15, 14,
    19, 13, 17, 18): ``[card ****1111]``.

    Not cards, on purpose: a single unseparated run of more than 19 digits (tracking and account
    numbers; a window inside it would match one time in ten by chance), UUIDs (32 hex digits), and ISO
    dates ``19xx/20xx-MM-DD`` (no card network issues numbers starting 19 or 20, and a date range
    ``2026-12-03 2026-12-10`` is 16 digits).

Phone numbers
    8-15 digits (the E.164 maximum is 15) with common separators, not glued to a word or hyphen. A
    bare run of 8-9 digits is taken for an order or date number. So a Luhn-invalid 16-digit number is
    neither a card nor a phone number, and stays; a Luhn-invalid 13-15 digit number written with
    separators is not a card, but ``redact`` masks it as a phone number.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate

__all__ = ["EMAIL_RE", "PHONE_RE", "luhn_valid", "mask_card_numbers", "redact"]

# A local part consumed possessively, and only from the start of its run (the look-behind): trying
# every position inside a long run of address characters, each failing at its end, is quadratic.
# The top-level domain (two letters or more) is picked out by ``_email`` rather than by backtracking.
# The look-ahead (a dot and two letters somewhere in the domain run) makes a match a real address,
# so the scan moves past only what it masks; it reads each domain run once, since a run ends at "@".
_EMAIL = r"[A-Za-z0-9._%+\-]++@(?=[A-Za-z0-9.\-]+?\.[A-Za-z]{2})[A-Za-z0-9.\-]++"
EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+\-])" + _EMAIL)
# Right where a masked address ended: another may start there, glued on (``a@b.com_x@c.org``).
_EMAIL_HERE_RE = re.compile(_EMAIL)

# A maximal run of phone characters, from its start; where the number ends is decided by ``_phone``.
# At least eight characters, so the many short digit runs of ordinary text never reach the callback.
PHONE_RE = re.compile(r"(?<![\w\-])\+?\d[\d\s().\-]{7,}+")

_CARD_SEPARATOR = r"(?:\s{1,8}|[ \t]{0,2}[\-.\u2010-\u2015\u2212][ \t]{0,2})"
# Whole digit group sequences. Each repetition's separator is bounded and a digit run can only end
# at a non-digit, so a repetition backtracks a bounded amount and the possessive loop never goes back.
# The look-ahead (13 characters that could belong to a sequence) skips, in C, the many short digit
# runs that cannot hold a card.
_DIGIT_SEQUENCE_RE = re.compile(rf"(?=\d[\d\s\-.\u2010-\u2015\u2212]{{12}})\d++(?:{_CARD_SEPARATOR}\d++)*+")
_DIGIT_RUN_RE = re.compile(r"\d+")
_COVERED_RE = re.compile("1+")
_HEX = "[0-9A-Fa-f]"
_NOT_CARD_RE = re.compile(
    rf"(?<![0-9A-Fa-f]){_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}(?![0-9A-Fa-f])"
    r"|(?<!\d)(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)"
)
# What may follow a card number and goes with it: up to two of an expiry date (MM/YY, MM/YYYY) or a
# 3-4 digit security code, each optionally labelled. Matched once at a fixed place, bounded length.
_CARD_TRAILER_RE = re.compile(
    r"(?:[\s,;:.\-/]{1,4}"
    r"(?:(?:exp(?:iry|ires|iration)?|valid(?:\s(?:thru|through|until))?|cvv2?|cvc2?|cid|csc|code)"
    r"\.?[ \t:#=]{0,3})?"
    r"(?:(?:1[0-2]|0?[1-9])[ \t]?/[ \t]?(?:\d{4}|\d{2})|\d{3,4})(?!\d)){1,2}",
    re.IGNORECASE,
)

CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19
# Which valid window names the card when several overlap: the lengths issuers use most, first.
_LENGTHS_BY_PREFERENCE = (16, 15, 14, 19, 13, 17, 18)
_VALUE = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_NON_DIGIT_RUN_RE = re.compile(r"\D+")
_ONE_DIGIT_RE = re.compile(r"\d")
_REVERSED_TLD_RE = re.compile(r"[A-Za-z]{2}\.")
_LETTERS_RE = re.compile(r"[A-Za-z]+")
_MORE_THAN_15_DIGITS_RE = re.compile(r"(?:\D*+\d){16}")
_PHONE_END_RE = re.compile(r"(?<![\w\-])\d")
# Every character a digit group sequence may hold besides digits (``\s`` is Unicode whitespace).
_SEPARATOR_CHARS = (
    "".join(re.findall(r"\s", "".join(map(chr, range(0x10000)))))
    + "-.\u2010\u2011\u2012\u2013\u2014\u2015\u2212|"
)
_DROP_SEPARATORS = str.maketrans("", "", _SEPARATOR_CHARS)
_DIGIT_OR_SEPARATOR = str.maketrans("0123456789" + _SEPARATOR_CHARS, "d" * 10 + "s" * len(_SEPARATOR_CHARS))
_GROUP_START_FLAGS = str.maketrans("dD", "01", "s")
# A window's weight sum (a byte) -> b"1" where it is 0 mod 10, else b"0".
_ZERO_MOD_10 = bytes.maketrans(
    bytes(range(256)), bytes(b"1"[0] if v % 10 == 0 else b"0"[0] for v in range(256))
)
# Between sequences scanned together: one group of 20 digits, longer than any card, so no window
# can reach across it.
_BARRIER = "|" + "0" * 20 + "|"


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


def _ascii_digits(match: re.Match[str]) -> str:
    # ``\d`` also matches other scripts' digits (full-width, Arabic-Indic); they mean the same numbers.
    return "".join(str(int(ch)) for ch in match.group())


class _Span:
    """A stretch of text to mask, and the last four digits of the card that names it."""

    __slots__ = ("end", "label", "start")

    def __init__(self, start: int, end: int, label: str) -> None:
        self.start, self.end, self.label = start, end, label


def _bits(flags: bytes) -> int:
    """An int with bit ``len(flags) - 1 - t`` set where ``flags[t]`` is ``b"1"`` (offset 0 is the top)."""
    return int(flags, 2) if flags else 0


def _flags(bits: int, size: int) -> str:
    """The inverse of ``_bits``: index t of the result is ``"1"`` where bit ``size - 1 - t`` is set."""
    return bin(bits)[2:].zfill(size)


def _zero_sum_window_ends(weights: bytes) -> dict[int, int]:
    """For each card length L, the ends of the windows of L weights that sum to 0 (mod 10).

    One byte per digit in a big int: ``sums >> 8k`` moves each digit's weight k places on, so adding
    shifted copies (by doubling: 1, 2, 4, 8, 16 places) gives every window's sum at once. A window
    sums to at most 19 * 9 = 171, so no byte carries into the next.
    """
    size = len(weights)
    s1 = int.from_bytes(weights, "big")
    s2 = s1 + (s1 >> 8)
    s4 = s2 + (s2 >> 16)
    s8 = s4 + (s4 >> 32)
    s16 = s8 + (s8 >> 64)
    s12 = s8 + (s4 >> 64)
    sums = {
        13: s12 + (s1 >> 96),
        14: s12 + (s2 >> 96),
        15: s12 + (s2 >> 96) + (s1 >> 112),
        16: s16,
        17: s16 + (s1 >> 128),
        18: s16 + (s2 >> 128),
        19: s16 + (s2 >> 128) + (s1 >> 144),
    }
    # Byte j holds the window ending after digit j, i.e. at offset j + 1: bit ``size - 1 - j``.
    return {
        length: _bits(total.to_bytes(size, "big").translate(_ZERO_MOD_10)) for length, total in sums.items()
    }


def _card_regions(digits: str, kinds: str) -> list[tuple[int, int, int]]:
    """Where valid windows lie: ``(first digit, end digit, end of the window naming the card)``.

    ``digits`` are the sequences' digits, ``kinds`` the sequences with each digit written ``d`` and
    each separator ``s``. Windows that overlap or touch make one region.

    Luhn over the digits ``[a, b)`` doubles position i when i and b have the same parity. So with the
    digits weighted for an even end (even positions doubled) and for an odd end, a window ending at b
    is valid when its weights for b's parity sum to 0 mod 10 (``_zero_sum_window_ends``). Offsets are
    bits of big ints (offset t at bit ``len(digits) - t``), so a window must also start and end at
    group boundaries: ``boundaries & (boundaries >> L)``. Every window of every length is checked by
    a fixed number of operations on ``len(digits)``-sized ints, done in C, however many groups there are.
    """
    size = len(digits) + 1  # offsets 0..len(digits): windows start and end between digits
    raw = digits.encode()
    plain, doubled = raw.translate(_VALUE), raw.translate(_DOUBLED)
    # Which digit offsets start a group, and the end: "dddssdd" -> "ddd" "D" "d" -> "0001000" + "1".
    starts = kinds.replace("sd", "D").translate(_GROUP_START_FLAGS)
    boundaries = _bits(("1" + starts[1:] + "1").encode())
    offset_parity = (
        _bits(b"10" * (size // 2 + 1)) >> (size % 2),
        _bits(b"01" * (size // 2 + 1)) >> (size % 2),
    )
    valid_ends = dict.fromkeys(_LENGTHS_BY_PREFERENCE, 0)
    for end_parity in (0, 1):
        weights = bytearray(plain)
        weights[end_parity::2] = doubled[end_parity::2]
        ends_here = boundaries & offset_parity[end_parity]
        for length, zero_sum_ends in _zero_sum_window_ends(bytes(weights)).items():
            valid_ends[length] |= ends_here & (boundaries >> length) & zero_sum_ends
    covered = 0
    for length, ends in valid_ends.items():
        for back in range(1, length + 1):
            covered |= ends << back
    if not covered:
        return []
    covered_flags = _flags(covered, size)
    ends_flags = {length: _flags(ends, size) for length, ends in valid_ends.items()}
    regions: list[tuple[int, int, int]] = []
    for region in _COVERED_RE.finditer(covered_flags):
        start, end = region.span()
        label_end = end
        for length in _LENGTHS_BY_PREFERENCE:  # the preferred length first; its last window names the card
            at = ends_flags[length].rfind("1", start + length, end + 1)
            if at >= 0:
                label_end = at
                break
        regions.append((start, end, label_end))
    return regions


def _char_offsets(joined: str, kinds: str, digit_offsets: list[int]) -> list[int]:
    """Where in ``joined`` the digit at each of the (sorted) digit offsets is."""
    if len(digit_offsets) > 32:  # many: one pass over every group
        group_starts = list(accumulate(map(len, _DIGIT_RUN_RE.findall(joined)), initial=0))
        separators_before = list(accumulate(map(len, _NON_DIGIT_RUN_RE.findall(joined)), initial=0))
        return [t + separators_before[bisect_right(group_starts, t) - 1] for t in digit_offsets]
    # few: a binary search each, counting digits in C, within the 4096-character chunk holding it
    chunk = 4096
    before = list(
        accumulate((kinds.count("d", i, i + chunk) for i in range(0, len(kinds), chunk)), initial=0)
    )
    found = []
    for t in digit_offsets:
        k = bisect_right(before, t) - 1
        lo, hi = k * chunk, min(len(kinds), (k + 1) * chunk)
        while lo < hi:  # the first char position with more than t digits up to it: digit t itself
            mid = (lo + hi) // 2
            if before[k] + kinds.count("d", k * chunk, mid + 1) <= t:
                lo = mid + 1
            else:
                hi = mid
        found.append(lo)
    return found


def _card_spans(text: str) -> list[_Span]:
    """The stretches of ``text`` holding card numbers (and any CVV or expiry after them)."""
    sequences = [
        m
        for m in _DIGIT_SEQUENCE_RE.finditer(text)
        # a single run of more than 19 digits is not a card (see the module docstring)
        if m.end() - m.start() >= CARD_MIN_DIGITS
        and not (m.end() - m.start() > CARD_MAX_DIGITS and m.group().isdecimal())
    ]
    if not sequences:
        return []
    # All sequences are scanned as one, kept apart by barriers: a fixed cost per call, not per sequence.
    joined = _BARRIER.join(m.group() for m in sequences)
    digits = joined.translate(_DROP_SEPARATORS)
    if not digits.isascii():
        joined = _DIGIT_RUN_RE.sub(_ascii_digits, joined)
        digits = joined.translate(_DROP_SEPARATORS)
    kinds = joined.translate(_DIGIT_OR_SEPARATOR)
    regions = _card_regions(digits, kinds)
    if not regions:
        return []
    # A region starts at a group's first digit and ends after a group's last one, so its char span
    # runs from the start's position to the position just after the end's last digit.
    starts = _char_offsets(joined, kinds, [start for start, _, _ in regions])
    lasts = _char_offsets(joined, kinds, [end - 1 for _, end, _ in regions])
    joined_starts = list(accumulate((m.end() - m.start() + len(_BARRIER) for m in sequences), initial=0))
    spans = []
    for (_, _, label_end), at, last in zip(regions, starts, lasts, strict=True):
        k = bisect_right(joined_starts, at) - 1  # regions never cross a barrier
        shift = sequences[k].start() - joined_starts[k]
        spans.append(_Span(at + shift, last + 1 + shift, digits[label_end - 4 : label_end]))
    return spans


def mask_card_numbers(text: str) -> str:
    """Replace Luhn-valid 13-19 digit card numbers, and a CVV or expiry after them, with a mask.

    The mask keeps the last four digits: ``[card ****1111]``. See the module docstring for which
    spellings are found and which digit runs are deliberately not cards.
    """
    found = _card_spans(text)
    if found and "-" in text:
        # UUIDs and ISO dates are not cards: scan again with them blanked out (same length, so the
        # positions agree with ``text``). Only when something was found, since blanking costs a scan.
        view = _NOT_CARD_RE.sub(lambda m: "_" * len(m.group()), text)
        if view != text:
            found = _card_spans(view)
    spans: list[_Span] = []
    for span in found:
        trailer = _CARD_TRAILER_RE.match(text, span.end)
        if trailer:
            span.end = trailer.end()
        if spans and span.start < spans[-1].end:
            spans[-1].end = max(spans[-1].end, span.end)
        else:
            spans.append(span)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append(f"[card ****{span.label}]")
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def _address_length(found: str) -> int:
    """How much of an ``EMAIL_RE`` match is the address: up to the letters of its top-level domain."""
    # The last "." followed by two letters, after at least one domain character: in the reversed
    # text, the first "." preceded by two letters (the look-ahead in ``EMAIL_RE`` promises one).
    tld = _REVERSED_TLD_RE.search(found[::-1])
    if tld is None or len(found) - 3 - tld.start() < found.index("@") + 2:
        return 0
    letters = _LETTERS_RE.match(found, len(found) - tld.end() + 1)
    return letters.end() if letters else 0


def _mask_emails(text: str) -> str:
    out: list[str] = []
    pos = 0
    match = EMAIL_RE.search(text)
    while match is not None:
        length = _address_length(match.group())
        if length:
            out.append(text[pos : match.start()])
            out.append("[email]")
            pos = match.start() + length
            match = _EMAIL_HERE_RE.match(text, pos) or EMAIL_RE.search(text, pos)
        else:
            match = EMAIL_RE.search(text, match.end())
    out.append(text[pos:])
    return "".join(out)


def _phone_masker(text: str) -> Callable[[re.Match[str]], str]:
    def _phone(match: re.Match[str]) -> str:
        run = match.group()
        after = text[match.end() : match.end() + 1]
        # The number ends at the last digit not glued to a word character or a hyphen: the first such
        # digit in the reversed run (a look-behind there is a look-ahead here).
        last = _PHONE_END_RE.search((run + after)[::-1])
        if last is None:
            return run
        cut = len(run) + len(after) - last.start()
        found = run[:cut]
        if len(found) < 8 or _MORE_THAN_15_DIGITS_RE.match(found):
            return run
        digits = len(_ONE_DIGIT_RE.findall(found))
        # A bare run of 8-9 digits is more often an order or date number than a phone number.
        phone_shaped = found.startswith("+") or digits >= 10 or digits != len(found)
        return "[phone]" + run[cut:] if digits >= 8 and phone_shaped else run

    return _phone


def redact(text: str) -> str:
    """Mask cards, e-mails and phone numbers in free text (for logs and notifications)."""
    text = mask_card_numbers(text)
    text = _mask_emails(text)
    return PHONE_RE.sub(_phone_masker(text), text)


def pseudonym(key: bytes, value: str, *, prefix: str, length: int = 24) -> str:
    """A stable pseudonym for ``value``: a keyed HMAC (SHA-256), so without the key nobody can compute
    it from the value (an unsalted hash of an e-mail address is found by hashing the address)."""
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"{prefix}{digest[:length]}"
