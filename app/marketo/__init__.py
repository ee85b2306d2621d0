"""Marketo: the REST client, its errors, and everything that turns events into Marketo calls.

Nothing here imports Flask, so scripts and benchmarks can use it without an app.
"""
