"""The sample models (iris, diabetes), an example image model, and the script that builds them.

Shipped in the wheel as the package mlbuffet.samples.
"""

from .catalog import EXAMPLES, SAMPLES, Sample, UnknownSampleError, sample, sample_path

__all__ = ["EXAMPLES", "SAMPLES", "Sample", "UnknownSampleError", "sample", "sample_path"]
