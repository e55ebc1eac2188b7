"""Each peer's own virtualenv, outside the tree: their pins must never touch MLBuffet's.

    python -m bench.peers.venvs                 # make every missing one (idempotent)
    python -m bench.peers.venvs mlserver ray    # only these
    python -m bench.peers.venvs --list          # where each is, and whether it is ready

A virtualenv is ready once its packages installed and its check imported
them; a half-made one is made again. `python -m bench` runs each peer from
its virtualenv and reports a peer whose virtualenv is missing or broken in
its table, with the reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ONNXRUNTIME = "onnxruntime==1.32.0"
"""The same onnxruntime as MLBuffet's own virtualenv, so every server runs the same kernels."""


@dataclass(frozen=True)
class PeerEnv:
    name: str
    packages: tuple[str, ...]
    check: str
    """Python that must run in the virtualenv once it is installed (imports, versions)."""
    why: str = ""

    @property
    def folder(self) -> Path:
        return cache_root() / self.name

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def marker(self) -> Path:
        return self.folder / ".ready"

    def ready(self) -> bool:
        return self.marker.exists() and self.python.exists()


ENVS = {
    env.name: env
    for env in (
        PeerEnv(
            "mlserver",
            ("mlserver==1.7.1", "uvloop<0.22", ONNXRUNTIME),
            "import mlserver, onnxruntime; print(mlserver.__version__)",
            "uvloop 0.22+ breaks MLServer 1.7.1's inference workers",
        ),
        PeerEnv(
            "litserve",
            ("litserve==0.2.19", ONNXRUNTIME),
            "import litserve, onnxruntime; print(litserve.__version__)",
        ),
        PeerEnv(
            "bentoml",
            ("bentoml==1.4.40", ONNXRUNTIME),
            "import bentoml, onnxruntime; print(bentoml.__version__)",
        ),
        PeerEnv(
            "rayserve",
            ("ray[serve]==2.60.0", ONNXRUNTIME),
            "import ray, ray.serve, onnxruntime; print(ray.__version__)",
        ),
        PeerEnv(
            "pytriton",
            ("nvidia-pytriton==0.7.0", ONNXRUNTIME),
            "import pytriton, onnxruntime; from importlib.metadata import version;"
            " print(version('nvidia-pytriton'))",
        ),
        PeerEnv(
            "perf_analyzer",
            # The binary links libcudart even for HTTP over CPU; the wheel brings it.
            ("tritonclient[http]==2.48.0", "nvidia-cuda-runtime-cu12==12.4.127"),
            "import subprocess, sys; from bench.peers.venvs import perf_analyzer_command;"
            " out = subprocess.run(perf_analyzer_command(), capture_output=True, text=True);"
            " assert 'Usage' in out.stdout + out.stderr, out.stderr; print('2.48.0')",
            "the last tritonclient wheel whose perf_analyzer binary runs on Debian 12's glibc;"
            " it also needs Debian's libb64-0d",
        ),
    )
}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlbuffet" / "peers"


def perf_analyzer_command() -> list[str]:
    """perf_analyzer with the CUDA runtime library of its virtualenv on the loader's path."""
    folder = ENVS["perf_analyzer"].folder
    libs = next(folder.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"), folder)
    return ["env", f"LD_LIBRARY_PATH={libs}", str(folder / "bin" / "perf_analyzer")]


def make(env: PeerEnv, log: Path) -> str:
    """Make `env` unless it is ready; returns the check's output (its version) or raises."""
    if not env.ready():
        shutil.rmtree(env.folder, ignore_errors=True)
        env.folder.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            subprocess.run([sys.executable, "-m", "venv", str(env.folder)], check=True)
            subprocess.run(
                [str(env.python), "-m", "pip", "install", "--quiet", *env.packages],
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    version = subprocess.run(
        [str(env.python), "-c", env.check],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()
    env.marker.write_text(version + "\n")
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.venvs", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(ENVS))
    parser.add_argument("--list", action="store_true", help="say where each is; make nothing")
    args = parser.parse_args(argv)
    if unknown := set(args.names) - set(ENVS):
        parser.error(f"unknown peer(s) {sorted(unknown)}; known: {', '.join(ENVS)}")
    chosen = [ENVS[n] for n in args.names] or list(ENVS.values())
    failed = 0
    for env in chosen:
        if args.list:
            state = env.marker.read_text().strip() if env.ready() else "not made"
            print(f"{env.name:14} {state:10} {env.folder}")
            continue
        log = cache_root() / f"{env.name}.log"
        try:
            print(f"{env.name}: {make(env, log)} in {env.folder}", flush=True)
        except subprocess.CalledProcessError as exc:
            failed += 1
            print(f"{env.name}: FAILED ({exc}); see {log}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
