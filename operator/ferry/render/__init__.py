"""Pure rendering of a RealtimeAPI's children from jinja2 templates."""
