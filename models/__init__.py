"""The sample models (iris, diabetes) and the script that builds them; shipped as mlbuffet.samples."""

from .catalog import SAMPLES, Sample, UnknownSampleError, sample, sample_path

__all__ = ["SAMPLES", "Sample", "UnknownSampleError", "sample", "sample_path"]
