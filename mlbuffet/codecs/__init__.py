"""Between what users send and the wire's tensors.

JSON text to Python values, strictly (json_input), JSON values to checked
arrays (values), pictures to an image model's input layout (images), and
output tensors back to JSON (outputs). The wire layout itself is
mlbuffet.protocol.tensors.
"""
