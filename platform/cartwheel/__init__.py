"""Cartwheel: the platform server. An application, not a library."""

__version__ = "0.1.0"
