"""The web dashboard at /ui: plain HTML, CSS and JavaScript in `static/`, served by `ui.py`."""
