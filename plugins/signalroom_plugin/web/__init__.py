"""The pipeline-state app (`app.py`); only its URL prefix here, so the plugin imports nothing heavy."""

URL_PREFIX = "/signalroom"
