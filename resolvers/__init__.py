"""Resolvers: decode GraphQL input, load through `db/`, call `domain/`, build schema types."""
