"""The package version, in one place every module can import without the package facade."""

__version__ = "0.1.0"
