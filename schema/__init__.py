"""The GraphQL object types, inputs, payloads and errors (strawberry), built from
rows and plain results; nested fields load through the request's DataLoaders. The
root fields and the assembled schema are `api/`; nothing here imports `resolvers/`
or SQLAlchemy."""
