"""Development tools shipped with the gateway (never loaded by the serving path).

Only the commands that start them (`flask demo`, `flask fake-marketo`) import this package, and
only inside the command, so a production process never loads it.
"""
