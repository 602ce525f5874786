"""The rules every way in reads client values with (photobox.inputs), one by one."""

from __future__ import annotations

import pytest

from photobox.inputs import INT64_MAX, int_or_none, json_depth_exceeds, parse_time


@pytest.mark.parametrize("text, expected", [("12", 12), (" 7 ", 7), ("+3", 3), (str(INT64_MAX), INT64_MAX),
                                            ("²", None), ("١٢", None), ("𝟙", None), ("1e3", None), ("-1", None),
                                            (str(INT64_MAX + 1), None), ("", None), (None, None), ("1 2", None)])
def test_int_or_none_takes_ascii_integers_sqlite_can_hold(text, expected):
    assert int_or_none(text) == expected


@pytest.mark.parametrize("value, expected", [
    (1600000000, 1600000000.0), ("1600000000000", 1600000000.0),  # seconds, JavaScript milliseconds
    ("2023-01-01T00:00:00Z", 1672531200.0), ("2023-01-01T00:00:00", 1672531200.0),  # no offset: UTC
    ("2023-01-01T02:00:00+02:00", 1672531200.0), ("Sun, 01 Jan 2023 00:00:00 GMT", 1672531200.0),
    ("-86400", -86400.0), ("", None), (None, None)])
def test_parse_time_reads_what_clients_send(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["1e20", "nan", "inf", "-inf", "-1e15", "1e400", float("nan"), 1e20, True,
                                   "0001-01-01", "9999-12-31T23:59:59+14:00", "yesterday", "2100-01-01"])
def test_parse_time_refuses_what_no_file_has(value):
    with pytest.raises(ValueError, match="mtime"):
        parse_time(value)


def test_json_depth_counts_nesting_not_brackets_in_strings():
    assert not json_depth_exceeds(b'{"a": [[[1]]]}', 4)
    assert json_depth_exceeds(b'{"a": [[[1]]]}', 3)
    assert not json_depth_exceeds(b'["[[[[[[[[", "{{{{{{{{"]', 1)
    assert json_depth_exceeds(b"[" * 100_000 + b"]" * 100_000, 32)
    # 35 levels without 33 openers in a row: found by peeling the innermost pairs.
    sneaky = b"[" * 20 + b"[]," + b"[" * 15 + b"1" + b"]" * 15 + b"]" * 20
    assert json_depth_exceeds(sneaky, 34) and not json_depth_exceeds(sneaky, 35)
    assert not json_depth_exceeds(b"[}" * 40, 32)  # malformed: left to the decoder to refuse
