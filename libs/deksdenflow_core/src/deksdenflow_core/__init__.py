"""deksdenflow_core."""
