"""Training jobs over NATS: the job store, log replay and submission, shared by gateway, trainer and clients."""

from mlbuffet.training.logs import job_events, log_lines
from mlbuffet.training.store import JobEntry, JobNotFoundError, JobStore
from mlbuffet.training.submit import checked_timeout, new_job_id, submit_job

__all__ = [
    "JobEntry",
    "JobNotFoundError",
    "JobStore",
    "checked_timeout",
    "job_events",
    "log_lines",
    "new_job_id",
    "submit_job",
]
