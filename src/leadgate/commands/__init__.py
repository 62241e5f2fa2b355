"""Command groups that live in their own modules; each registers itself on the
``leadgate`` app (``leadgate.cli``) when imported."""
