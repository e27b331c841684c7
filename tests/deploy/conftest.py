"""Deployment checks: the ``install`` marker (a fresh venv from PyPI; ``-m "not install"``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "install: installs Nexus into a fresh venv with deploy/install.sh (slow)"
    )
