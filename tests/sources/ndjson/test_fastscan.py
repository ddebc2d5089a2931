"""The C fast path of the NDJSON scan (``_fastscan.c``) against the Python scan it accelerates.

The C code may accept a line (and add its counts) or hand it back to the Python scan; whatever
it does, the scan's result must be the Python scan's, to the last Decimal digit and line number.
So every test here scans the same lines twice, once with the C fast path and once without, and
compares everything a scan keeps: the sums (Decimal costs by their exact digits), skipped counts
and locations, ``info`` notes, group order, and the request-id fingerprints per day. The lines
come from a generator of usage records of every shape the logs hold, mutated towards the edges
of what either parser accepts (duplicate keys, escapes, exponents, offsets, NaN, trailing
commas, ...), under every setting that changes how a line is read.
"""

from __future__ import annotations

import copy
import math
import random
from array import array
from collections import defaultdict
from datetime import date, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_job.models import Window
from recon_job.sources.ndjson import source as ndjson_source
from recon_job.sources.ndjson.records import NdjsonOptions
from recon_job.sources.ndjson.source import _Scan

fastscan = pytest.importorskip("recon_job.sources.ndjson._fastscan")
if ndjson_source._fast_block is None:
    pytest.skip("RECON_NDJSON_FASTSCAN=0: the C fast path is off", allow_module_level=True)

MARCH = Window("monthly", date(2026, 3, 1), date(2026, 4, 1))
MODELS = ["gpt-4o-mini", "gpt-4o", "o4-mini", "text-embedding-3-small", "whisper-1", "tts-1"]
#: The settings that change how a line is read, each a scan of its own.
OPTIONS: list[dict[str, Any]] = [
    {},
    {"group_by": ("model", "project_id")},
    {"group_by": ("model", "project_id", "api_key_id")},
    {"project_ids": ("proj_a",)},
    {"cost_unit": "cents"},
    {"timezone": "Europe/Paris"},
    {"dedupe": False},
]


def scans(lines: list[bytes], **options: Any) -> tuple[_Scan, _Scan]:
    """The lines scanned with the C fast path and without, each in chunks as read_lines gives
    them, the models known to both from a first pass (the C code counts only the models the
    general path classified: a second chunk is where it does the most). The C scan reads the
    first half as a list (``scan``) and the second as a block (``scan_block``); ``blocks``
    below checks a whole block scan too."""
    with_c, without = (_scan(lines, use_c, False, **options) for use_c in (True, False))
    same(_scan(lines, True, True, **options), without)
    return with_c, without


def _scan(lines: list[bytes], use_c: bool, blocks: bool, **options: Any) -> _Scan:
    scan = _Scan(NdjsonOptions(paths=("x",), workers=1, **options), MARCH)
    if not use_c:
        scan.c_config = None
    else:
        assert scan.c_config is not None
    scan.path = "logs.ndjson"
    scan.prints = defaultdict(lambda: array("q"))
    for model in MODELS:
        scan.family_of(None, None, model)
    half = len(lines) // 2
    first, second = lines[:half], lines[half:]
    if blocks and first:
        scan.scan_block(b"\n".join(first), len(first), 1)
    else:
        scan.scan(first, 1)
    if use_c and second:
        scan.scan_block(b"\n".join(second), len(second), half + 1)
    else:
        scan.scan(second, half + 1)
    return scan


def block_scan(lines: list[bytes], config: tuple[Any, ...]) -> tuple[Any, ...]:
    """``_fastscan.scan_block`` of ``lines`` (which hold no newline), as a scan reads them."""
    return fastscan.scan_block(b"\n".join(lines), len(lines), config)  # type: ignore[no-any-return]


def exact(value: Any) -> Any:
    """Sums compared with their exact Decimal digits (0.10 is not 0.1)."""
    return [str(v) if not isinstance(v, int) else v for v in value]


def same(with_c: _Scan, without: _Scan) -> None:
    assert list(with_c.acc) == list(without.acc) or set(with_c.acc) == set(without.acc)
    assert {k: exact(v) for k, v in with_c.acc.items()} == {
        k: exact(v) for k, v in without.acc.items()
    }
    assert with_c.skipped == without.skipped
    assert with_c.skips.locations == without.skips.locations
    assert with_c.info == without.info
    assert {d: sorted(p) for d, p in with_c.prints.items() if p} == {
        d: sorted(p) for d, p in without.prints.items() if p
    }
    assert with_c.limit.groups == without.limit.groups


# -- generated records --------------------------------------------------------------------------

ISO = st.sampled_from(
    [
        "2026-03-08T08:17:19.000Z",
        "2026-03-08T08:17:19Z",
        "2026-03-08T08:17Z",
        "2026-03-08 08:17:19+00:00",
        "2026-03-08T08:17:19.123456+00:00",
        "2026-03-08T08:17:19.1234567Z",
        "2026-03-08T08:17:19.12345-00:00",
        "2026-03-08T23:30:00-02:00",
        "2026-03-01T00:30:00+02:00",
        "2026-03-31T23:59:59-01:00",
        "2026-04-01T00:00:00+00:00",
        "2026-02-28T23:00:00Z",
        "2026-03-08T08:17:19",
        "2026-03-08",
        "2026-03-08T08",
        "2026-03-08T24:00:00Z",
        "2026-03-08T08:17:60Z",
        "2026-02-30T08:00:00Z",
        "2024-02-29T08:00:00Z",
        "2026-03-08T08:17:19+24:00",
        "2026-03-08T08:17:19+0200",
        "2026-03-08t08:17:19z",
        "20260308T081719Z",
        "2026-03-08T08:17:19.Z",
        "yesterday",
        "",
        "1773123853",
        "1773123853000",
    ]
)
EPOCHS = st.sampled_from(
    [1772582400, 1772582399, 1773123853000, 1775001599999, 1775001600000, 10**11, 10**11 + 1]
)
EPOCHS = st.one_of(EPOCHS, st.sampled_from([10**15, 10**16, -1, 0, 1773123853.5, 1e400]))
COUNTS = st.one_of(
    st.integers(0, 5000),
    st.sampled_from([0, -0, -1, 2**30 - 1, 2**30, 2**31, 10**19, 10**20]),
    st.sampled_from([1.0, 1.5, "5", None, True, False, [], {}]),
)
COSTS = st.one_of(
    st.sampled_from(
        [0, 1, 2, 0.1, 0.25, 0.10, 1.5e-05, 0.0001234, 100.0, 0.30000000000000004, 123456789.5]
    ),
    st.sampled_from([1e15, 1e16, -0.5, -0.0, 0.000000000001, 0.0000000000001, 9999999999.0]),
    st.decimals(min_value=0, max_value=1000, places=8, allow_nan=False).map(float),
    st.sampled_from(["0.0123", "0.10", " 0.5 ", "1e-3", "abc", "", "-1", "00.5", "5.", "1000"]),
    st.sampled_from([None, True, [], {}]),
)
IDS = st.one_of(
    st.sampled_from(["req_1", "req_2", "req_1", "", "réq", "req\u00e9", "a\\u0041"]),
    st.sampled_from([None, 5, True, ["x"]]),
)
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=6)
EXTRA = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False), TEXT
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


CLEAN_TS = st.one_of(
    st.datetimes(min_value=datetime(2026, 3, 1, 0, 0, 1), max_value=datetime(2026, 3, 31, 23)).map(
        lambda at: at.isoformat(timespec="milliseconds") + "Z"
    ),
    st.sampled_from(
        [
            "2026-03-08T08:17:19Z",
            "2026-03-08 08:17:19+00:00",
            "2026-03-01T01:30:00+02:00",
            "2026-03-31T23:30:00-01:00",
            "2026-03-08",
            "2026-03-08T08:17",
            1773123853000,
            1773123853,
            1772582399,
            1775001600000,
        ]
    ),
)
CLEAN_COUNT = st.integers(0, 50_000)
CLEAN_COST = st.one_of(
    st.decimals(min_value=0, max_value=5, places=8, allow_nan=False).map(float),
    st.decimals(min_value=0, max_value=5, places=4, allow_nan=False).map(str),
    st.integers(0, 3),
)


def counts(draw: st.DrawFn, chat: bool, nested: bool) -> list[tuple[str, Any]]:
    """Token counts as the APIs write them (Chat or Responses), a few details included."""
    inp_key, out_key = (
        ("prompt_tokens", "completion_tokens") if chat else ("input_tokens", "output_tokens")
    )
    inp = draw(CLEAN_COUNT)
    cached = draw(st.integers(0, inp))
    out = draw(CLEAN_COUNT)
    members: list[tuple[str, Any]] = [(inp_key, inp), (out_key, out)]
    if draw(st.booleans()):
        members.append(("total_tokens", inp + out if draw(st.integers(0, 5)) else inp))
    where = draw(
        st.sampled_from(["none", "flat", "details"] if nested or chat else ["none", "flat"])
    )
    if where == "flat":
        members.append(("cached_tokens", cached))
    elif where == "details":
        details: dict[str, Any] = {"cached_tokens": cached}
        if draw(st.booleans()):
            details["audio_tokens"] = 0
        members.append(("prompt_tokens_details" if chat else "input_tokens_details", details))
    if draw(st.booleans()):
        reasoning = {"reasoning_tokens": draw(st.integers(0, max(out, 0)))}
        members.append(
            ("completion_tokens_details" if chat else "output_tokens_details", reasoning)
        )
    return members


#: What may be done to a clean record: a field's value swapped for an odd one, a field dropped,
#: or a key written twice.
ODD: dict[str, Any] = {
    "timestamp": st.one_of(ISO, EPOCHS),
    "model": st.sampled_from(["", None, 4, "new-model", "gpt-4o\u00e9", *MODELS]),
    "prompt_tokens": COUNTS,
    "completion_tokens": COUNTS,
    "input_tokens": COUNTS,
    "output_tokens": COUNTS,
    "cached_tokens": COUNTS,
    "total_tokens": COUNTS,
    "usage": st.sampled_from([None, 5, [], {}, {"prompt_tokens": 1}]),
    "cost": COSTS,
    "cost_usd": COSTS,
    "service_tier": st.sampled_from(["flex", "FLEX ", " priority", "default", 3, None]),
    "batch": st.sampled_from([True, False, None, 1, "true"]),
    "project_id": st.sampled_from(["proj_a", "proj_b", None, 7, ""]),
    "api_key_id": st.sampled_from(["key_a", None, 7]),
    "request_id": IDS,
    "family": st.sampled_from(["completions", "embeddings", None, "nope"]),
    "endpoint": st.sampled_from(["/v1/chat/completions", "/v1/embeddings", None]),
    "prompt_tokens_details": st.one_of(
        st.dictionaries(
            st.sampled_from(["cached_tokens", "audio_tokens", "image_tokens", "x"]),
            COUNTS,
            max_size=3,
        ),
        st.sampled_from([None, 5, "cached_tokens", ["cached_tokens"]]),
    ),
    "completion_tokens_details": st.one_of(
        st.dictionaries(
            st.sampled_from(["reasoning_tokens", "audio_tokens", "image_tokens", "x"]),
            COUNTS,
            max_size=3,
        ),
        st.sampled_from([None, "reasoning_tokens", ["reasoning_tokens"]]),
    ),
    "input_token_details": st.fixed_dictionaries({"audio_tokens": COUNTS}),
    "response": st.fixed_dictionaries({"usage": st.fixed_dictionaries({"input_tokens": COUNTS})}),
    "user_field": EXTRA,
}


def mutate(draw: st.DrawFn, members: list[tuple[str, Any]]) -> None:
    """One odd change to ``members``, in place (nested usage objects included)."""
    kind = draw(st.sampled_from(["value", "value", "value", "drop", "twice"]))
    usage = next((v for k, v in members if k == "usage" and isinstance(v, list)), None)
    target = usage if usage is not None and draw(st.booleans()) else members
    if kind == "drop" and target:
        del target[draw(st.integers(0, len(target) - 1))]
    elif kind == "twice" and target:
        target.append(draw(st.sampled_from(target)))
    else:
        name = draw(st.sampled_from(sorted(ODD)))
        # A copy: sampled_from hands out the very objects of its list ([] and {} among them),
        # and a later change to this record must not change the next example's.
        target.append((name, copy.deepcopy(draw(ODD[name]))))


@st.composite
def record(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """One usage record as an ordered list of members (so a key can be there twice): a clean
    one of a shape real logs write, then no, one or two odd changes."""
    chat = draw(st.booleans())
    nested = draw(st.booleans())
    tokens = counts(draw, chat, nested)
    members: list[tuple[str, Any]] = [
        ("timestamp", draw(CLEAN_TS)),
        ("model", draw(st.sampled_from(MODELS[:3]))),
    ]
    members += [("usage", tokens)] if nested else tokens
    for name, values in (
        ("cost_usd", CLEAN_COST),
        ("cost", CLEAN_COST),
        ("service_tier", st.sampled_from(["flex", "priority", "default"])),
        ("batch", st.booleans()),
        ("project_id", st.sampled_from(["proj_a", "proj_b"])),
        ("api_key_id", st.sampled_from(["key_a", "key_b"])),
        ("request_id", st.sampled_from(["req_1", "req_2", "req_3", "req_4"])),
        (
            "user",
            st.fixed_dictionaries({"id": st.integers(0, 9), "tags": st.lists(ASCII, max_size=2)}),
        ),
    ):
        if draw(st.booleans()):
            members.append((name, draw(values)))
    draw(st.randoms()).shuffle(members)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        mutate(draw, members)
    return members


def dump(value: Any, rng: random.Random) -> str:
    """JSON text of ``value``, with the spacing and escapes real writers use."""
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        sep = rng.choice([",", ", ", " ,  "])
        inner = sep.join(f"{dump(k, rng)}:{rng.choice(['', ' '])}{dump(v, rng)}" for k, v in value)
        return "{" + inner + "}"
    if isinstance(value, dict):
        return dump(list(value.items()), rng) if value else "{}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v, rng) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return orjson.dumps(value).decode()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return rng.choice(["1e400", "NaN", "-Infinity"])
    text = orjson.dumps(value).decode()
    if isinstance(value, str) and rng.random() < 0.1:
        text = text.encode("ascii", "backslashreplace").decode().replace("\\x", "\\u00")
    return text


@st.composite
def line(draw: st.DrawFn) -> bytes:
    rng = draw(st.randoms())
    text = dump(draw(record()), rng)
    mutation = draw(
        st.sampled_from(["none"] * 24 + ["comma", "cut", "space", "nan", "two", "array"])
    )
    if mutation == "comma":
        text = text[:-1] + ",}"
    elif mutation == "cut":
        text = text[: rng.randrange(len(text) + 1)]
    elif mutation == "space":
        text = " \t" + text + " \r"
    elif mutation == "nan":
        text = text.replace(":", ':NaN,"x":', 1)
    elif mutation == "two":
        text = text + "{}"
    elif mutation == "array":
        text = "[" + text + "]"
    return text.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line(), min_size=1, max_size=30), which=st.sampled_from(range(len(OPTIONS))))
def test_the_c_fast_path_gives_the_python_scans_result_for_any_lines(
    lines: list[bytes], which: int
) -> None:
    same(*scans(lines, **OPTIONS[which]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one=line(), which=st.sampled_from(range(len(OPTIONS))))
def test_each_line_alone_counts_the_same_with_and_without_c(one: bytes, which: int) -> None:
    same(*scans([one, one], **OPTIONS[which]))


COMMON = [
    '{"timestamp":"2026-03-08T08:17:19.000Z","model":"gpt-4o","request_id":"req_1",'
    '"prompt_tokens":8639,"completion_tokens":997,"total_tokens":9636,"cached_tokens":4318}',
    '{"timestamp":1773123853000,"model":"gpt-4o-mini","input_tokens":100,"output_tokens":10,'
    '"cached_tokens":0,"cost_usd":0.00002125}',
    '{"timestamp":"2026-03-08T10:17:19+02:00","model":"gpt-4o","usage":{"prompt_tokens":5,'
    '"completion_tokens":1,"total_tokens":6,"prompt_tokens_details":{"cached_tokens":0,'
    '"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}',
    '{"timestamp": "2026-03-08 08:17:19+00:00", "model": "o4-mini", "usage": {"input_tokens": 9,'
    ' "output_tokens": 3, "input_tokens_details": {"cached_tokens": 4},'
    ' "output_tokens_details": {"reasoning_tokens": 1}}, "service_tier": "flex"}',
    '{"timestamp":1773123853,"model":"gpt-4o","prompt_tokens":1,"completion_tokens":1,'
    '"batch":true,"project_id":"proj_a","api_key_id":"key_a","user":{"id":[1,2,{"a":null}]}}',
    '{"timestamp":"2026-03-31T22:30:00-01:00","model":"gpt-4o","prompt_tokens":2,'
    '"completion_tokens":0,"cost":"0.0100"}',
    '{"timestamp":"2026-03-08","model":"gpt-4o","prompt_tokens":2,"completion_tokens":2,'
    '"cost":12,"total_tokens":5}',
]
BAILED = [
    "",
    "{not json",
    "[1, 2, 3]",
    '{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":-5,"completion_tokens":1}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":5,"completion_tokens":1,}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":5,"completion_tokens":NaN}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":5,"completion_tokens":1,'
    '"model":"gpt-4o-mini"}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"text-embedding-3-small","prompt_tokens":5}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":5,"completion_tokens":1,'
    '"cost":1.5e-3}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"g\\u0070t-4o","prompt_tokens":5,'
    '"completion_tokens":1}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":5,"completion_tokens":1,'
    '"family":"completions"}',
    '{"timestamp":"yesterday","model":"gpt-4o","prompt_tokens":5,"completion_tokens":1}',
    '{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":5,"completion_tokens":1,'
    '"note":"caf\u00e9"}',
]


def test_the_c_fast_path_counts_the_shapes_real_logs_write_and_hands_back_the_rest() -> None:
    """Without this, a C scan that handed every line back would pass the tests above."""
    scan = scans([], group_by=("model", "project_id", "api_key_id"))[0]
    assert scan.c_config is not None
    lines = [text.encode() for text in COMMON + BAILED]
    groups, bailed, _, outside, counted, prints, notes, _ = block_scan(lines, scan.c_config)
    assert bailed == list(range(len(COMMON), len(lines)))
    assert (counted, outside) == (len(COMMON), 0)
    assert sum(group[9] for group in groups) == len(COMMON)
    assert notes == {date(2026, 3, 8).toordinal(): 1}  # 2 + 2 tokens, total_tokens 5
    assert [len(found) // 8 for found in prints.values()] == [1]  # req_1, dedupe on
    with_c, without = scans(lines, group_by=("model", "project_id", "api_key_id"))
    same(with_c, without)
    assert without.skipped == with_c.skipped
    assert with_c.skipped["malformed_json"] == 3  # not json, the trailing comma, NaN


def test_a_scan_without_the_c_module_reads_every_line_in_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ndjson_source, "_fast_block", None)
    scan = _Scan(NdjsonOptions(paths=("x",)), MARCH)
    assert scan.c_config is None
    mapped = _Scan(NdjsonOptions(paths=("x",), fields={"model": "m"}), MARCH)
    assert mapped.c_config is None  # a field mapping is the general path's


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(
        st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126).filter(
                lambda c: c not in '"\\\\'
            ),
            min_size=1,
            max_size=200,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_request_id_fingerprints_are_the_python_ones_for_ids_of_any_length(ids: list[str]) -> None:
    lines = [
        orjson.dumps(
            {
                "timestamp": "2026-03-08T08:00:00Z",
                "model": "gpt-4o",
                "request_id": rid,
                "prompt_tokens": 1,
                "completion_tokens": 1,
            }
        )
        for rid in ids
    ]
    config = scans([])[0].c_config
    _, bailed, _, _, counted, prints, _, _ = block_scan(lines, config)
    assert (bailed, counted) == ([], len(ids))
    found = array("q", prints[date(2026, 3, 8).toordinal()])
    assert sorted(found) == sorted(ndjson_source.fingerprint(rid) for rid in ids)


@settings(max_examples=200, deadline=None)
@given(noise=st.lists(st.binary(max_size=80), min_size=1, max_size=10))
def test_any_bytes_are_handed_back_or_counted_as_python_counts_them(noise: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in noise]
    lines += [
        b'{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":1,"x":' + n
        for n in lines
    ]
    same(*scans(lines))


def test_deep_nesting_and_huge_numbers_are_handed_back_without_recursing_deep() -> None:
    head = b'{"timestamp":"2026-03-08T08:00:00Z","model":"gpt-4o","prompt_tokens":1,'
    lines = [
        head + b'"completion_tokens":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        head + b'"completion_tokens":1,"x":' + b"[" * 30 + b"]" * 30 + b"}",
        head + b'"completion_tokens":' + b"9" * 5000 + b"}",
        head + b'"completion_tokens":1,"x":"' + b"a" * 100_000,
    ]
    config = scans([])[0].c_config
    _, bailed, _, _, counted, _, _, _ = block_scan(lines, config)
    assert (bailed, counted) == ([0, 2, 3], 1)
    same(*scans(lines))
