"""The core's version, in a module of its own so that any module can read
it without importing the public facade (and everything behind it)."""

__version__ = "0.1.0.dev0"
