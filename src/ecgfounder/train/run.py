"""One process's place in a training run (``torchrun`` sets RANK/WORLD_SIZE/LOCAL_RANK)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig

__all__ = ["Run"]


class Run:
    """This process in a (possibly distributed) run: rank, world size, device, output folder, log."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world > 1
        if cfg.device:
            self.device = torch.device(cfg.device)
        elif self.distributed and torch.cuda.is_available():
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.distributed and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.out = Path(cfg.output_dir)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._tb: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def log(self, msg: str) -> None:
        if not self.main:
            return
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(self.out / "train.log", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def tb(self) -> Any:
        if self._tb is None and self.main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tb"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self._tb = False
        return self._tb or None
