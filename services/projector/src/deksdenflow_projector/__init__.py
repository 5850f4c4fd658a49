"""deksdenflow projector: the PostgreSQL read model, built from the event log."""
