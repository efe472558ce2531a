"""The plugin host: hook specifications and entry-point discovery."""
