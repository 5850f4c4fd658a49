"""The pure domain: aggregates as ``decide``/``evolve`` pairs. No I/O, no clocks, no random ids.

``decide(state, command, ctx)`` returns the events a command produces or raises a ``DomainError``;
``evolve(state, event)`` folds one event into the state and is total over the aggregate's events.
Time and ids come in through ``DecisionContext``.
"""
