"""Test-only helpers (the page host and the Munchkin/Forms 2.0 stubs it serves).

The fake Marketo is part of the product: app/devtools/fake_marketo.
"""
