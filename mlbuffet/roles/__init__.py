"""What every role process uses around its actor: the run loop and its signals (runner),
the optional health listener for orchestrators (health_listener), node ids
(node_ids), the line each role prints once ready with its reader (ready_lines), and
the memory a modelhost's budget defaults to (memory)."""
