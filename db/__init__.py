"""Persistence: SQLAlchemy 2 models, engine setup and the queries the resolvers use."""
