"""leadgate commands: learn."""

from __future__ import annotations
