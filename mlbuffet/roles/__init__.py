"""What every role process uses around its actor: the run loop and its signals (runner),
the optional health listener for orchestrators (health_listener), and node ids
(node_ids)."""
