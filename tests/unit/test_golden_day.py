"""The worker's step gives the golden day's flows, alerts and states byte for byte."""

from __future__ import annotations

from tests.golden_day import OUTPUTS, outputs


def test_the_recorded_day_gives_the_same_bytes() -> None:
    want = OUTPUTS.read_bytes().splitlines()
    got = list(outputs())
    for n, (line, expected) in enumerate(zip(got, want, strict=False), 1):
        assert line == expected, f"line {n} of {OUTPUTS.name} differs"
    assert len(got) == len(want)


def test_the_day_exercises_every_baseline_and_alerts() -> None:
    text = OUTPUTS.read_bytes()
    for baseline in (b"snapshot", b"minute", b"origin"):
        assert b'"baseline":"' + baseline + b'"' in text
    assert text.count(b"\nalert ") >= 4
