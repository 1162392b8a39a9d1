"""Tools for development, tests and key-less demos; never shipped inside a logged model.

``stub_server``: an OpenAI-compatible HTTP server on 127.0.0.1 with scriptable faults; its
endpoints are in ``stub_chat`` (chat completions) and ``stub_fine_tuning`` (files, jobs).
"""
