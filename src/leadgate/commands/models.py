"""leadgate commands: models."""

from __future__ import annotations
