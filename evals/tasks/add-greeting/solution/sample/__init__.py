"""A sample package."""

from sample.greeting import greet

__version__ = "1.0.0"
__all__ = ["greet"]
