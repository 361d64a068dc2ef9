"""Training and scoring of the sequential recommenders: presets, the all-position loop, candidate scores.

Every epoch visits each user's training sequence once, in a seeded random order, in mini-batches of
``batch_size`` users; a sequence is cut to its last ``max_len + 1`` items (inputs = all but the last,
targets = all but the first, so position t predicts item t+1). Adam with the SASRec paper's betas
(0.9, 0.98). Runs are deterministic for a seed on a given machine and thread count: torch's generator seeds
initialisation and dropout, a numpy generator the user order and SASRec's sampled negatives.

Presets: ``demo`` fits both models well inside the CPU demo's budget (2 cores); ``paper`` uses the SASRec
paper's MovieLens-1M setting (d = 50, 2 blocks, 1 head, dropout 0.2, max length 200, batch 128, lr 1e-3) and a
GRU4Rec with 100 hidden units (Hidasi et al.), for as many epochs as a GPU makes cheap.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from spectra_eval.validation import SpectraInputError
from spectra_probe.recommenders.data import SequenceData

log = logging.getLogger(__name__)

MODELS = ("sasrec", "gru4rec")


@dataclass(frozen=True)
class RecConfig:
    """Hyperparameters of one model (``model`` picks the architecture; unused fields are ignored)."""

    model: str
    epochs: int
    max_len: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    dim: int = 50
    hidden: int = 100  # GRU4Rec
    blocks: int = 2  # SASRec
    heads: int = 1  # SASRec
    layers: int = 1  # GRU4Rec
    dropout: float = 0.2
    l2: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.model not in MODELS:
            raise SpectraInputError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        for name in ("epochs", "max_len", "batch_size", "dim", "hidden", "blocks", "heads", "layers"):
            if not int(getattr(self, name)) >= 1:
                raise SpectraInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise SpectraInputError(f"dropout must be in [0, 1), got {self.dropout}")


PRESETS: dict[str, dict[str, RecConfig]] = {
    "demo": {
        "sasrec": RecConfig("sasrec", epochs=60, max_len=50, batch_size=128, learning_rate=2e-3, dim=50,
                            dropout=0.2),
        "gru4rec": RecConfig("gru4rec", epochs=30, max_len=50, batch_size=64, learning_rate=2e-3, dim=64,
                             hidden=100, dropout=0.25),
    },
    "paper": {
        "sasrec": RecConfig("sasrec", epochs=200, max_len=200, batch_size=128, learning_rate=1e-3, dim=50,
                            dropout=0.2),
        "gru4rec": RecConfig("gru4rec", epochs=100, max_len=200, batch_size=64, learning_rate=1e-3, dim=100,
                             hidden=100, dropout=0.25),
    },
}


def preset(name: str, model: str, **overrides) -> RecConfig:
    """A preset's config for ``model`` with ``overrides`` (None values ignored)."""
    if name not in PRESETS:
        raise SpectraInputError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    if model not in MODELS:
        raise SpectraInputError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    return replace(PRESETS[name][model], **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Trained:
    """A trained model with its config and what training measured (loss per epoch, seconds)."""

    model: object
    config: RecConfig
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"config": asdict(self.config), "epochs": len(self.losses), "seconds": round(self.seconds, 1),
                "first_loss": self.losses[0] if self.losses else None,
                "last_loss": self.losses[-1] if self.losses else None}


def build(config: RecConfig, n_items: int):
    from spectra_probe.recommenders.models import GRU4Rec, SASRec

    if config.model == "sasrec":
        return SASRec(n_items, dim=config.dim, blocks=config.blocks, heads=config.heads, dropout=config.dropout,
                      max_len=config.max_len)
    return GRU4Rec(n_items, dim=config.dim, hidden=config.hidden, layers=config.layers, dropout=config.dropout)


def pad(sequences: list[np.ndarray], length: int, side: str) -> np.ndarray:
    """Stack sequences (each cut to its last ``length`` items) into (n, length), zeros on ``side``."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for i, s in enumerate(sequences):
        s = s[-length:]
        if side == "left":
            out[i, length - len(s):] = s
        else:
            out[i, :len(s)] = s
    return out


def _seen_mask(seq: SequenceData) -> np.ndarray | None:
    """(n_users, n_items + 1) membership of each user's training items, for negative sampling (None when the
    dense mask would be too large: then a sampled negative may, rarely, be a training item)."""
    if len(seq.users) * (seq.n_items + 1) > 200_000_000:
        log.info("negative sampling without the per-user exclusion (catalogue too large for a dense mask)")
        return None
    mask = np.zeros((len(seq.users), seq.n_items + 1), dtype=bool)
    for u, s in enumerate(seq.sequences):
        mask[u, s] = True
    mask[:, 0] = True
    return mask


def _negatives(rng: np.random.Generator, users: np.ndarray, shape: tuple[int, int], n_items: int,
               seen: np.ndarray | None) -> np.ndarray:
    """One uniform negative per position, redrawn while it is a training item of the user (SASRec's rule)."""
    neg = rng.integers(1, n_items + 1, size=shape)
    if seen is None:
        return neg
    for _ in range(100):
        clash = seen[users[:, None], neg]
        if not clash.any():
            break
        neg[clash] = rng.integers(1, n_items + 1, size=int(clash.sum()))
    return neg


def fit(seq: SequenceData, config: RecConfig, *, progress: bool = True) -> Trained:
    """Train ``config.model`` on ``seq``'s training sequences (module docstring)."""
    import torch
    from torch.nn import functional as F
    from tqdm.auto import trange

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build(config, seq.n_items).to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98),
                                 weight_decay=config.l2)
    trainable = np.flatnonzero([len(s) >= 2 for s in seq.sequences])
    windows = [seq.sequences[u][-(config.max_len + 1):] for u in trainable]
    inputs = pad([w[:-1] for w in windows], config.max_len, model.padding)
    targets = pad([w[1:] for w in windows], config.max_len, model.padding)
    seen = _seen_mask(seq) if config.model == "sasrec" else None
    result = Trained(model, config)
    start = time.perf_counter()
    bar = trange(config.epochs, desc=f"train {config.model}", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = rng.permutation(len(windows))
        total, count = 0.0, 0
        for b in range(0, len(order), config.batch_size):
            rows = order[b:b + config.batch_size]
            x = torch.from_numpy(inputs[rows]).to(config.device)
            y = torch.from_numpy(targets[rows]).to(config.device)
            mask = y != 0
            states = model(x)
            if config.model == "sasrec":
                neg = torch.from_numpy(_negatives(rng, trainable[rows], tuple(y.shape), seq.n_items, seen))
                pos_logit = model.score(states, y.unsqueeze(-1)).squeeze(-1)[mask]
                neg_logit = model.score(states, neg.to(config.device).unsqueeze(-1)).squeeze(-1)[mask]
                loss = (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                        + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))
            else:
                logits = model.all_scores(states[mask])
                logits[:, 0] = float("-inf")  # padding is never a next item
                loss = F.cross_entropy(logits, y[mask])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * int(mask.sum())
            count += int(mask.sum())
        result.losses.append(total / max(count, 1))
        bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == config.epochs:
            log.info("%s epoch %d/%d: loss %.4f (%.1f s)", config.model, epoch + 1, config.epochs,
                     result.losses[-1], time.perf_counter() - start)
    result.seconds = time.perf_counter() - start
    return result


def score(trained: Trained, seq: SequenceData, candidates: list[np.ndarray], *, batch_size: int = 256) -> list[np.ndarray]:
    """Model scores of ``candidates[u]`` (item indices) after user u's whole training sequence."""
    import torch

    model, config = trained.model, trained.config
    model.eval()
    lengths = np.array([min(len(s), config.max_len) for s in seq.sequences])
    inputs = pad(seq.sequences, config.max_len, model.padding)
    out: list[np.ndarray] = []
    with torch.no_grad():
        for b in range(0, len(inputs), batch_size):
            states = model(torch.from_numpy(inputs[b:b + batch_size]).to(config.device))
            last = states[:, -1] if model.padding == "left" else states[
                torch.arange(states.shape[0]), torch.from_numpy(lengths[b:b + batch_size] - 1)]
            for i, state in enumerate(last):
                items = torch.from_numpy(np.asarray(candidates[b + i], dtype=np.int64)).to(config.device)
                out.append(model.score(state, items).cpu().numpy().astype(np.float64))
    return out
