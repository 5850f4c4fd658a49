"""deksdenflow_api."""
