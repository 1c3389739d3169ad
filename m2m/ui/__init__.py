"""The browser app: a reader that shows the book, plays each page's music and shows every step.

``build_app(config)`` returns the gr.Blocks; ``launch_kwargs(config)`` the arguments ``launch`` needs
(theme, css, allowed paths, upload limit). gradio is imported only inside this package.
"""

from __future__ import annotations

from m2m.ui.app import build_app, launch_kwargs
from m2m.ui.config import AppConfig

__all__ = ["AppConfig", "build_app", "launch_kwargs"]
