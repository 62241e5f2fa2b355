"""leadgate commands: backtest."""

from __future__ import annotations
