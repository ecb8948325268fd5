"""Use cases: one module per capability, each gathering facts through `db/`,
asking `domain/` and persisting through a unit of work that owns the transaction
and idempotency (by the sender's referenceId). Neither GraphQL nor SQL appears
here; resolvers decode input, call a use case and build the payload.

Today: `activation` (with `group_commit`, which registers the clicks of one
process together on PostgreSQL) and `unit_of_work` (what a store offers a use case).
"""
