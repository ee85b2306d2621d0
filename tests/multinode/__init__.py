"""Helpers for running several gateway nodes against one PostgreSQL database in tests."""
