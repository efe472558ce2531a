"""Registration of the ``jepa`` representation (filled in by the plugin's implementation)."""
