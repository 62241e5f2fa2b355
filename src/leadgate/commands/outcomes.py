"""leadgate commands: outcomes."""

from __future__ import annotations
