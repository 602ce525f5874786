"""photobox: a self-hosted photo and video archive for a Raspberry Pi with an SSD."""

__version__ = "0.1.0"

__all__ = ["__version__"]
