"""`python -m app.devtools.fake_marketo`: the standalone fake without a gateway settings file."""

from app.devtools.fake_marketo.standalone import main

main()
