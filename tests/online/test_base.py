"""Pure helpers of the online stores' reads."""

from datetime import timedelta

from feast_spark.online.base import is_retained, retention_cutoff_us, value_picker


def test_the_retention_cutoff_agrees_with_is_retained_at_its_edge() -> None:
    # given a max_age of 1 hour and a read time
    max_age, now_us = timedelta(hours=1), 10_000_000_000

    # when the cutoff is computed once
    cutoff = retention_cutoff_us(max_age, now_us)

    # then an event time is retained exactly when it is after the cutoff
    assert cutoff is not None
    for event_us in (cutoff - 1, cutoff, cutoff + 1):
        assert (event_us > cutoff) is is_retained(event_us, max_age, now_us)
    # and without max_age nothing is cut off
    assert retention_cutoff_us(None, now_us) is None


def test_the_value_picker_gives_features_in_request_order_and_none_for_absent_ones() -> None:
    # given a row of one key column, then features a, b, c, then the event time
    raw = ("key", 1.0, 2.0, 3.0, 99)

    # when picking in another order, one feature, and a feature without a column
    every = value_picker(("a", "b", "c"), ("c", "a", "b"), offset=1)
    one = value_picker(("a", "b", "c"), ("b",), offset=1)
    absent = value_picker(("a", "b"), ("b", "z", "a"), offset=1)

    # then each gives a tuple in the requested order
    assert every(raw) == (3.0, 1.0, 2.0)
    assert one(raw) == (2.0,)
    assert absent(raw) == (2.0, None, 1.0)
    assert value_picker((), (), offset=1)(raw) == ()
