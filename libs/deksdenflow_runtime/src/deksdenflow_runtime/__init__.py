"""deksdenflow_runtime."""
