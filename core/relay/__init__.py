"""The broker relay (`s321 relay -c relay.toml`): clients without a link of their own
send batches over ZeroMQ with CURVE encryption (transport `broker-relay`); the relay
stores each one durably before its receipt, forwards it through the upstream relay.toml
names for that client, and routes CBP's acknowledgements back to the client that sent
each record. docs/relay.md describes the protocol and the configuration.

Modules: `config` (relay.toml), `keys` (CURVE key files), `protocol` (messages, shared
with the client transport), `intake` (taking a batch in), `routes` (durable routing
and the ack outbox), `upstream` (forwarding), `server` (the ROUTER), `cli`. Nothing is
imported here, so the client transport loads only what it uses.
"""
