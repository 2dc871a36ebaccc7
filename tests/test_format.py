from datetime import timedelta

from foundation.format import human_bytes, human_duration, percent, state_for_ratio


def test_human_units():
    assert human_bytes(512) == "512 B"
    assert human_bytes(230_905_535) == "220.2 MB"
    assert human_bytes(None) == "n/a"
    assert human_duration(timedelta(seconds=42)) == "42 s"
    assert human_duration(timedelta(minutes=30)) == "30 min"
    assert human_duration(timedelta(hours=5)) == "5.0 h"
    assert human_duration(timedelta(days=3)) == "3.0 days"
    assert human_duration(-1) == "n/a"
    assert percent(0.7234) == "72.3 %" and percent(None) == "n/a"


def test_traffic_light_states():
    assert state_for_ratio(0.995, 0.99) == "green"
    assert state_for_ratio(0.97, 0.99) == "amber"
    assert state_for_ratio(0.80, 0.99) == "red"
    assert state_for_ratio(None, 0.99) == "grey"
