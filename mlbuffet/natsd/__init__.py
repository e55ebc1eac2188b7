"""The embedded nats-server that `mlbuffet up` and `mlbuffet nats` run (server), and the
NATS users and permissions of every role (users), rendered for it and for deploy/."""
