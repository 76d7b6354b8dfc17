"""The yiyang home-care edge gateway daemon."""

__version__ = "0.1.0"
