"""Fault-injection driver: `python fault_driver.py OUT` trains a tiny run on the bundled digits once uninterrupted
(OUT/ref), then, for every write point k of that run, in a forked child that kills itself (`os._exit`) at point k
(OUT/<k>), followed by a second child that resumes it (or, when the kill came before the first checkpoint was
committed, starts it again); right after each last.npz commit, the first resume is itself killed at its first
write (the repair) before the final resume. Prints JSON {"points": [labels], "resumed": [bool per k]} for the
test to check.

Forked children (not fresh interpreters) keep the battery fast: the parent imports convolve once and never trains.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

import convolve as cv
from convolve import _atomic, nn, optim
from convolve.data import ArrayDataset, DataLoader, transforms
from convolve.data.digits import load_digits_arrays
from convolve.train import LAST, Trainer

EPOCHS = 3
KILLED = 77


def make_trainer(out: Path, init_seed: int) -> tuple[Trainer, DataLoader, DataLoader]:
    """A tiny Adam + StepLR + dropout run on 192 digits whose val accuracy improves at epochs 1 and 2, not at 3."""
    images, labels, _ = load_digits_arrays()
    labels = labels.astype(np.int64)
    train = ArrayDataset(images[:192], labels[:192], pixel_max=16)
    val = ArrayDataset(images[192:240], labels[192:240], pixel_max=16)
    cv.manual_seed(init_seed)  # a resumed process starts from other initial weights: restore must overwrite them
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2), nn.Linear(144, 10))
    to_tensor = transforms.ToTensor(max_value=16)
    loader = DataLoader(train, batch_size=48, shuffle=True, generator=cv.Generator(1), transform=to_tensor)
    val_loader = DataLoader(val, batch_size=96, transform=to_tensor)
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    trainer = Trainer(model, None, optimizer, scheduler, checkpoint_dir=out, seed=3, progress=False)
    return trainer, loader, val_loader


def child(out: Path, kill_at: int | None, resume: bool, points_file: Path | None = None) -> None:
    """Train (or resume) into `out`; exit KILLED at write point `kill_at`. Never returns."""
    labels: list[str] = []

    def hook(label: str) -> None:
        labels.append(label)
        if kill_at is not None and len(labels) - 1 == kill_at:
            os._exit(KILLED)

    try:
        _atomic.fault_hook = hook
        trainer, loader, val_loader = make_trainer(out, init_seed=0 if not resume else 99)
        trainer.fit(loader, EPOCHS, val_loader=val_loader, resume=resume)
        if points_file is not None:
            points_file.write_text(json.dumps(labels))
    except BaseException as e:  # report, never fall back into the parent's loop
        print(f"child failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


def run_child(out: Path, kill_at: int | None, resume: bool, points_file: Path | None = None) -> int:
    pid = os.fork()
    if pid == 0:
        child(out, kill_at, resume, points_file)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(root: Path) -> None:
    points_file = root / "points.json"
    if run_child(root / "ref", None, False, points_file) != 0:
        raise SystemExit("the uninterrupted reference run failed")
    points = json.loads(points_file.read_text())
    resumed = []
    for k in range(len(points)):
        out = root / str(k)
        code = run_child(out, k, False)
        if code != KILLED:
            raise SystemExit(f"write point {k} ({points[k]}): the child exited with {code}, not killed")
        resume = (out / LAST).is_file()
        if resume and points[k].startswith(f"{LAST}: renamed"):  # a second kill, inside the resume's repair
            code = run_child(out, 0, True)
            if code != KILLED:
                raise SystemExit(f"write point {k}: the resume killed at its first write exited with {code}")
        code = run_child(out, None, resume)
        if code != 0:
            raise SystemExit(f"write point {k} ({points[k]}): the resumed child exited with {code}")
        resumed.append(resume)
    print(json.dumps({"points": points, "resumed": resumed}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
