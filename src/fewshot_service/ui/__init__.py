"""The curator workbench: a static single page at /ui that speaks the public API with the curator's key."""

from .router import router

__all__ = ["router"]
