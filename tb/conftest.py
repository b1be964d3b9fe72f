"""Run order for the regression: the longest simulations (marked `long`) start first, so
that under `pytest -n` they overlap the many short tests instead of running alone at the
end."""
from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "long: a long simulation, started first")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("long") is None)   # stable: else in order
