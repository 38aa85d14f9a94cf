"""Fixtures shared by the viewer tests."""

from __future__ import annotations

import pytest
from napari.settings import get_settings


@pytest.fixture
def unsaved_settings():
    """napari's settings, changed in memory only (never the user's settings file)."""
    settings = get_settings()
    saving, preferences = settings._save_on_change, dict(settings.plugins.extension2reader)
    settings._save_on_change = False
    yield settings
    settings.plugins.extension2reader = preferences
    settings._save_on_change = saving


@pytest.fixture
def reader_preferences(unsaved_settings):
    """The plugin's reader preferences, as :func:`prefer_mesoscale_readers` sets them."""
    from napari_mesoscale.napari import prefer_mesoscale_readers

    prefer_mesoscale_readers()
    return unsaved_settings


@pytest.fixture
def console_names(monkeypatch) -> dict:
    """What the widgets push into napari's console (``viewer.update_console``), in one dict."""
    import napari

    namespace: dict = {}
    monkeypatch.setattr(
        napari.Viewer, "update_console", lambda _viewer, names: namespace.update(names)
    )
    return namespace
