"""The web console: server-rendered pages over the API's own routes, live from the event stream."""

from deksdenflow_api.console.routes import install

__all__ = ["install"]
