"""openpan: a self-hostable server for the 123pan open-platform API."""

__version__ = "0.1.0"
