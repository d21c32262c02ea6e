"""Where the application's settings live: one INI file through QSettings.

The location is, in order: the ``path`` given, the environment variable ``RTDSTFT_GUI_SETTINGS``,
or the user's standard place (``~/.config/rtdstft/rtdstft-gui.ini`` on Linux). Tests pass a
temporary path. Each widget reads and writes its own group (``analysis/``, ``display/``, ...).
"""

from __future__ import annotations

import os

from PyQt6 import QtCore

ENV = "RTDSTFT_GUI_SETTINGS"


def open_settings(path: str | os.PathLike | None = None) -> QtCore.QSettings:
    """The QSettings of the application (INI format), at ``path`` or the default place."""
    path = path or os.environ.get(ENV)
    if path:
        return QtCore.QSettings(str(path), QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings(
        QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, "rtdstft", "rtdstft-gui"
    )


def read(settings: QtCore.QSettings, key: str, default):
    """``settings[key]`` converted to the type of ``default`` (INI files store text); the default
    when missing or unreadable."""
    value = settings.value(key, None)
    if value is None or default is None:
        return default if value is None else value
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
        return type(default)(value)
    except (TypeError, ValueError):
        return default
