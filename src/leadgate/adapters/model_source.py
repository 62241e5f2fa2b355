"""Scoring models from files, or the packaged default."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from leadgate.domain.model import ScoringModel
from leadgate.domain.model_file import load_model
from leadgate.domain.yamldoc import SpecError

DEFAULT_MODEL = "default.yaml"


def default_model_text() -> str:
    return files("leadgate").joinpath("models", DEFAULT_MODEL).read_text(encoding="utf-8")


def read_model(path: Path | None = None) -> ScoringModel:
    """The model in ``path``, or the packaged default; SpecError names every problem."""
    if path is None:
        return load_model(default_model_text(), DEFAULT_MODEL)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{path}: no such model file"]) from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read the model file ({exc})"]) from None
    return load_model(text, str(path))
