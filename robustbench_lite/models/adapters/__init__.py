"""Built-in model-file adapters."""
