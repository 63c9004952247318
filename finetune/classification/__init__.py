"""GLUE-style classification and regression tasks."""
