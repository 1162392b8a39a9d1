"""Tools for development, tests and key-less demos; never shipped inside a logged model.

``stub_server``: an OpenAI-compatible HTTP server on 127.0.0.1 (chat completions, files,
fine-tuning jobs) with scriptable faults.
"""
