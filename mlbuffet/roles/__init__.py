"""What every role process uses around its actor: the run loop and its signals (runner),
the optional health listener for orchestrators (health_listener), node ids
(node_ids), and the memory a modelhost's budget defaults to (memory)."""
