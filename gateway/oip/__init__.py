"""The Open Inference Protocol (KServe V2) codec: JSON and binary tensors, metadata.

Only translation lives here (OIP documents <-> mesh messages); the routes in
gateway/routes/v2.py do the talking to the mesh. docs/v2.md is the reference.
"""
