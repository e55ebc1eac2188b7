"""The NATS client side that the gateway, the Python client and the actors share.

Connecting (connection), sending a request and reading its outcome (request), sending it
again when a host stays silent (hedging), and the one reply subscription per connection
that lets a late answer still win (reply_inbox).
"""
