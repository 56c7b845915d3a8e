"""Dataclass <-> plain dict, derived from the fields: round trips and errors that name the field."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.processing.stored import from_plain, to_plain


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    colour: Colour
    size: float

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("size must be >= 0")


@dataclass
class Outer:
    name: str
    count: int
    flag: bool
    inner: Inner | None
    when: float | None = None  # a default does not make a field optional in stored data


outers = st.builds(
    Outer,
    name=st.text(max_size=5),
    count=st.integers(-(2**40), 2**40),
    flag=st.booleans(),
    inner=st.none() | st.builds(Inner, st.sampled_from(Colour), st.floats(0, 1e12)),
    when=st.none() | st.floats(allow_nan=False, allow_infinity=False),
)


@given(outers)
def test_round_trip_through_json(value: Outer) -> None:
    plain = to_plain(value)
    assert list(plain) == ["name", "count", "flag", "inner", "when"]
    if value.inner is not None:
        assert type(plain["inner"]["colour"]) is str  # enums become their values
    assert from_plain(Outer, orjson.loads(orjson.dumps(plain))) == value


def test_ints_are_read_as_floats_where_floats_are_declared() -> None:
    got = from_plain(
        Outer,
        {
            "name": "a",
            "count": 1,
            "flag": False,
            "inner": {"colour": "red", "size": 3},
            "when": None,
        },
    )
    assert got.inner == Inner(Colour.RED, 3.0) and type(got.inner.size) is float


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], r"^o: expected an object"),
        ({"name": "a", "count": 1, "flag": True}, r"^o: missing \['inner', 'when'\], unknown none"),
        (
            {"name": "a", "count": 1, "flag": True, "inner": None, "x": 1, "when": None},
            r"unknown \['x'\]",
        ),
        (
            {"name": "a", "count": True, "flag": True, "inner": None, "when": None},
            r"^o\.count: expected int",
        ),
        (
            {"name": "a", "count": 1.5, "flag": True, "inner": None, "when": None},
            r"^o\.count: expected int",
        ),
        (
            {"name": 1, "count": 1, "flag": True, "inner": None, "when": None},
            r"^o\.name: expected str",
        ),
        (
            {"name": "a", "count": 1, "flag": 1, "inner": None, "when": None},
            r"^o\.flag: expected bool",
        ),
        (
            {
                "name": "a",
                "count": 1,
                "flag": True,
                "inner": {"colour": "green", "size": 1},
                "when": None,
            },
            r"^o\.inner\.colour: 'green' is not a valid Colour",
        ),
        (
            {
                "name": "a",
                "count": 1,
                "flag": True,
                "inner": {"colour": "red", "size": -1},
                "when": None,
            },
            r"^o\.inner: size must be >= 0",
        ),
        (
            {"name": "a", "count": 1, "flag": True, "inner": None, "when": "now"},
            r"^o\.when: expected float",
        ),
    ],
)
def test_damaged_data_names_the_field(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_plain(Outer, data, "o")


def test_unsupported_annotations_are_a_programming_error() -> None:
    @dataclass
    class Odd:
        items: dict[str, int]

    @dataclass
    class Pair:
        items: tuple[int, str]

    @dataclass
    class Mixed:
        row: Labelled

    for cls in (Odd, Pair, Mixed):
        with pytest.raises(TypeError, match="unsupported annotation"):
            from_plain(cls, {"items": [1]})


class Point(NamedTuple):
    x: float
    y: float


class Labelled(NamedTuple):
    name: str
    y: float


@dataclass
class Track:
    last: Point | None
    points: deque[Point]
    counts: list[int]
    colours: tuple[Colour, ...]
    inners: list[Inner]


FINITE = st.floats(allow_nan=False, allow_infinity=False)
points = st.builds(Point, FINITE, FINITE)
tracks = st.builds(
    Track,
    last=st.none() | points,
    points=st.lists(points, max_size=4).map(deque),
    counts=st.lists(st.integers(-(2**40), 2**40), max_size=4),
    colours=st.lists(st.sampled_from(Colour), max_size=3).map(tuple),
    inners=st.lists(st.builds(Inner, st.sampled_from(Colour), st.floats(0, 1e12)), max_size=2),
)


@given(tracks)
def test_rows_and_sequences_round_trip_through_json(value: Track) -> None:
    plain = to_plain(value)
    assert all(type(p) is list for p in plain["points"])  # rows are lists of numbers
    assert plain["colours"] == [c.value for c in value.colours]
    back = from_plain(Track, orjson.loads(orjson.dumps(plain)))
    assert back == value and type(back.points) is deque and type(back.colours) is tuple
    assert all(type(p) is Point for p in back.points)


TRACK = {"last": None, "points": [[1.0, 2.0]], "counts": [1], "colours": [], "inners": []}


def test_rows_accept_integral_numbers_as_floats() -> None:
    got = from_plain(Track, {**TRACK, "last": [1, 2.5], "points": [[3, 4]]})
    assert got.last == Point(1.0, 2.5) and type(got.last.x) is float
    assert type(got.points[0].y) is float


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"last": [1.0]}, r"^t\.last: expected a list of 2 numbers"),
        ({"last": [1.0, True]}, r"^t\.last: expected float, got True"),
        ({"points": [[1.0, 2.0], [1.0, "x"]]}, r"^t\.points: item 1: expected float, got 'x'"),
        ({"points": {"x": 1.0}}, r"^t\.points: expected a list"),
        ({"counts": [1, 2.0]}, r"^t\.counts: item 1: expected int"),
        ({"colours": ["red", "green"]}, r"^t\.colours: item 1: 'green' is not a valid Colour"),
        ({"inners": [{"colour": "red", "size": -1}]}, r"^t\.inners: item 0: .*size must be"),
    ],
)
def test_damaged_rows_and_sequences_name_the_item(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_plain(Track, {**TRACK, **change}, "t")


@dataclass(frozen=True)
class One:
    only: Colour


@dataclass(frozen=True)
class Empty:
    pass


def test_one_and_no_fields() -> None:
    assert to_plain(One(Colour.BLUE)) == {"only": "blue"}
    assert from_plain(One, {"only": "blue"}) == One(Colour.BLUE)
    assert to_plain(Empty()) == {} and from_plain(Empty, {}) == Empty()
