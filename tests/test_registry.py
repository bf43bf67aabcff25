import pytest

from edge_fer.errors import UserError
from edge_fer.registry import Registry, closest


def test_registered_entries_are_found_and_listed():
    things = Registry("thing")
    things.register("beta")(2)
    things.register("alpha")(1)
    assert things.get("alpha") == 1 and things.names() == ["alpha", "beta"] and "beta" in things


def test_a_name_registered_twice_is_a_bug_not_a_silent_replacement():
    things = Registry("thing")
    things.register("alpha")(1)
    with pytest.raises(ValueError, match="registered twice"):
        things.register("alpha")(2)
    assert things.get("alpha") == 1


def test_an_unknown_name_is_one_line_with_the_nearest_and_the_known():
    things = Registry("dataset")
    things.register("ferplus")(1)
    things.register("rafdb")(2)
    with pytest.raises(UserError, match=r"unknown dataset 'ferplsu' \(did you mean 'ferplus'\?\); known: ferplus, rafdb"):
        things.get("ferplsu")
    assert closest("zzzz", ["ferplus"]) == ""
