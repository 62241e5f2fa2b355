"""leadgate: decide which leads go to sales, and when."""

__version__ = "0.1.0"
