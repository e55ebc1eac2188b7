"""The trainer actor: runs training jobs and registers the models they produce."""

from actors.trainer.config import DockerConfig, TrainerConfig
from actors.trainer.service import TrainerService

__all__ = ["DockerConfig", "TrainerConfig", "TrainerService"]
