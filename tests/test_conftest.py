from tests.conftest import _groups_dropped


def test_the_suite_refuses_the_pytest_and_xdist_pair_that_drops_its_groups():
    assert _groups_dropped("9.2.0", "3.8.0")
    assert not _groups_dropped("9.1.1", "3.8.0")  # the pin in pyproject.toml
    assert not _groups_dropped("9.2.0", "3.9.0")  # a fixed xdist is let through
