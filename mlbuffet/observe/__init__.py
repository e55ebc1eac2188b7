"""What nodes say about themselves, and what is said of the whole mesh.

Every role publishes heartbeats (heartbeat) and keeps latency histograms (histograms);
the metrics actor tracks them (presence); anyone asks it for the cluster view and its
recent series (cluster_status), or reads the events the mesh kept (event_history).
"""
