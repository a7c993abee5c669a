"""python -m asrbench: the asrbench command."""

from .console import entry

entry()
