"""The gateway's own front: token verification, limits, per-process caches and
the HTTP middleware. It sits above `schema/` and `resolvers/`, which never import
it: what a resolver needs from the transport comes in the request context
(`resolvers/context.py`)."""
