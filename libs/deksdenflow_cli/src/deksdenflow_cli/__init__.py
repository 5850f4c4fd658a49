"""The ``deksdenflow`` terminal client: every resource and action of the REST API, nothing else.

It talks to the public API only (a local ``make run`` or a remote deployment) and never imports a
service; the runtime's ``deksdenflow`` entry point hands it every command other than run/projector/demo.
"""
