"""`softdimo serve`: a local web page to compare a teacher at N steps with its one-step students.

:mod:`.models` loads any teacher or student folder by path and draws and times its images (no web
code); :mod:`.app` is the Gradio page over it (optional extra ``serve``), each action also an HTTP
API endpoint.
"""
from __future__ import annotations

from .app import ServeConfig, build_app, launch
from .models import Generation, ModelPool, parse_conditions

__all__ = ["ServeConfig", "build_app", "launch", "ModelPool", "Generation", "parse_conditions"]
