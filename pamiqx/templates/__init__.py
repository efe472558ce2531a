"""File templates for ``pamiqx new-plugin``."""
