"""The model registry in JetStream: records in KV, files in the Object Store."""

from mlbuffet.registry.admin import RegistryAdmin
from mlbuffet.registry.inspect import ModelInspector, sha256_of, signature_of
from mlbuffet.registry.model_file import ModelFile
from mlbuffet.registry.store import Entry, Registry
from mlbuffet.registry.view import Listener, RegistryView

__all__ = [
    "Entry",
    "Listener",
    "ModelFile",
    "ModelInspector",
    "Registry",
    "RegistryAdmin",
    "RegistryView",
    "sha256_of",
    "signature_of",
]
