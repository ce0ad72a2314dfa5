"""The built-in classification task, its objectives and its losses."""
