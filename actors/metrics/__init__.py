"""The metrics actor: heartbeats in; a cluster view, node events and Prometheus metrics out."""
