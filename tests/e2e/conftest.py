"""Every test in tests/e2e runs on a real cluster: mark it so, and fail (never skip) when the cluster is absent."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
