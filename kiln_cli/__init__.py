"""The `kiln` command line: Kiln's faces from a terminal (docs/cli.md)."""

from importlib import metadata

try:
    __version__ = metadata.version("kiln")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0"
