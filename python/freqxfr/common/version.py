"""The installed distribution's version: what pip installed, not a string kept by hand."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("freqxfr")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0.0.0+unknown"
