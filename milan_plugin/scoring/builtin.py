"""Built-in hook implementations of this area (see milan_plugin.hookspecs)."""
