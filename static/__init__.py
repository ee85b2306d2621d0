"""The browser library's sources and builds, packaged as `app.browser.assets`.

This folder stays at the top of the repo (sources here, builds from .ci/build-js); the
`app/browser/assets` link makes it that subpackage, so the loader reads it with
importlib.resources from a checkout, an editable install and a wheel alike. A wheel ships it
only inside `app`: nothing named `static` is installed.
"""
