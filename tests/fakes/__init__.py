"""Test doubles that stand in for outside services (Marketo) over real loopback HTTP."""
