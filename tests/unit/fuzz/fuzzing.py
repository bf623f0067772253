"""What the fuzz tests share: the example budget, the tally of inputs tried, hostile-input strategies,
and a generator of valid events built from the event models' own field constraints."""

from __future__ import annotations

import json
import os
import types
import typing
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import annotated_types
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

#: Examples per fuzz test (``make fuzz`` raises it). The default keeps the unit suite fast.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

#: Inputs tried per decoder: every call hypothesis made (generation, replay and shrinking).
TRIED: Counter[str] = Counter()

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.filter_too_much],
)


def tried(decoder: str) -> None:
    """Count one input fed to ``decoder`` (call it first thing in each fuzz test's body)."""
    TRIED[decoder] += 1


# ---- hostile values --------------------------------------------------------------------------------
#: Any code point, lone surrogates included (JSON can carry them as ``\ud800`` escapes).
any_char = st.characters(codec=None, exclude_categories=())
HOSTILE_STRINGS = (
    "", " ", "\x00", "\ud800", "\udfff", "\ufeff", "NaN", "Infinity", "-0", "1e999", "²", "٣", "¹²³",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00Z", "24:00",
    "x" * 70_000, "é" * 100_001, "9" * 5000, "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd",
    "jane@example.com", "4111 1111 1111 1111", "\u202e\u0301\u0000",
)
hostile_text = st.one_of(st.text(any_char, max_size=40), st.sampled_from(HOSTILE_STRINGS))
hostile_numbers = st.one_of(
    st.integers(), st.integers(min_value=-(10**40), max_value=10**40), st.floats(),
    st.sampled_from([0, -1, 2**63, -(2**63) - 1, 10**4000, float("nan"), float("inf"), -0.0, 1e308]),
)
json_scalars = st.one_of(st.none(), st.booleans(), hostile_numbers, hostile_text)
#: Any Python value ``json.dumps`` can write (NaN and Infinity included, as Python writes them).
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)


def deeply_nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def dumps(value: Any, *, ascii_only: bool = True) -> bytes:
    """JSON as a careless producer might write it: NaN allowed; lone surrogates as escapes, or as
    invalid UTF-8 (surrogatepass) when ``ascii_only`` is false."""
    return json.dumps(value, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` truncated, with bytes flipped, inserted or deleted."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b'"', b"{", b"]",
                                                b",", b"NaN", b"\\u", b"\\ud800"]))
        elif op == "delete" and data:
            del data[at]
    return bytes(data)


# ---- valid events, from the models' own constraints ------------------------------------------------
#: UTC instants whose UTC form is representable, shown in any offset pydantic accepts.
aware_datetimes = st.builds(
    lambda instant, offset: instant.astimezone(timezone(offset)) if instant.year not in (1, 9999) else instant,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
    .map(lambda d: timedelta(minutes=round(d.total_seconds() / 60))),
)
valid_chars = st.characters(codec="utf-8")


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(item.metadata))
        elif isinstance(item, annotated_types.MinLen):
            found["min_length"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            found["max_length"] = item.max_length
        elif isinstance(item, annotated_types.Ge):
            found["ge"] = item.ge
        elif isinstance(item, annotated_types.Le):
            found["le"] = item.le
        else:
            found.update({k: v for k in ("pattern", "max_digits", "decimal_places")
                          if (v := getattr(item, k, None)) is not None})
    return found


def _strings(c: dict[str, Any]) -> st.SearchStrategy[str]:
    lo, hi = c.get("min_length", 0), c.get("max_length")
    if "pattern" in c:
        return st.from_regex(c["pattern"], fullmatch=True).filter(lambda s: lo <= len(s) <= (hi or len(s)))
    longest = st.builds(lambda ch: ch * (hi or 5000), valid_chars)  # the longest string allowed
    return st.text(valid_chars, min_size=lo, max_size=min(hi or 60, 60)) | longest


def strategy_for(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    """Values the model accepts for ``annotation`` (with its pydantic/annotated-types constraints)."""
    c = _constraints(metadata or [])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return strategy_for(args[0], [*(metadata or []), *args[1:]])
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a, metadata) for a in args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=min(c.get("max_length", 3), 3))
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=3)
    if annotation is type(None):
        return st.none()
    if annotation is str:
        return _strings(c)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(min_value=c.get("ge"), max_value=c.get("le")) | st.sampled_from(
            [v for v in (2**63 - 1, -(2**63), 10**20) if c.get("ge", v) <= v <= c.get("le", v)] or [c.get("ge", 0)])
    if annotation is float:
        # Finite only: JSON carries no infinity (event models that take floats refuse it, or bound them).
        return st.floats(min_value=c.get("ge"), max_value=c.get("le"), allow_nan=False, allow_infinity=False)
    if annotation is Decimal:
        places = c.get("decimal_places", 4)
        top = Decimal(10) ** (c.get("max_digits", 14) - places) - 1
        return st.integers(0, places).flatmap(
            lambda p: st.decimals(min_value=c.get("ge", -top), max_value=top, places=p))
    if annotation is uuid.UUID:
        return st.uuids()
    if annotation is AwareDatetime:
        return aware_datetimes
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_fields(annotation).map(annotation.model_validate)
    raise NotImplementedError(f"no strategy for {annotation!r}: teach tests/unit/fuzz/fuzzing.py")


def model_fields(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``model``: every required field, and any of the optional ones."""
    required = {n: strategy_for(f.annotation, f.metadata) for n, f in model.model_fields.items() if f.is_required()}
    optional = {n: strategy_for(f.annotation, f.metadata) for n, f in model.model_fields.items()
                if not f.is_required()}
    return st.fixed_dictionaries(required, optional=optional)


def events(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """Valid instances of ``model`` (a strategy error here means the strategy, not the model, is wrong)."""
    return model_fields(model).map(model.model_validate)
