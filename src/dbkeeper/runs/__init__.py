"""The application layer: what a command does, from its parsed request to a typed result the CLI renders.

A run opens nothing the CLI did not hand it, prints nothing, and exits nothing: ``cli`` parses and renders,
``runs`` decides the order of things (sources, locks, jobs, copies, prunes, notifications, metrics), and the layers
below (repo, engines, storage) do the work.
"""
