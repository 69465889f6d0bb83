"""kopf handlers: decorators and a few lines each; the logic lives in ferry.services."""
