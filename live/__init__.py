"""Live progress (DOMAIN.md §8): the broker that reads the event stream in commit
order and fans it out (`broker`), each subscription's stream with resume and
initial state (`streams`), the websocket protocols (`transport`), the operation's
context (`context`), the audit of what subscriptions hand over (`audit`), and a
driver that runs a coroutine at once (`eager`). Above the schema and the
resolvers, beside the gateway: nothing below imports it."""
