"""Specs written elsewhere, read as protocols: their steps, their context, and what is wrong with them
(each problem named by file, line and field) — pure functions over the files' text, but for ``sandbox``,
which evaluates a CodeMachine package's JavaScript in a Node subprocess."""
