"""Neural track, model: a torch MLP with embeddings for categorical codes, and a small CNN
for images.

Input columns named `cat__*` are integer codes (0 = unseen/missing), each embedded in
min(16, round(1.6 * V ** 0.56)) dimensions; columns named `img__<column>__<i>` are an image's
pixels (channel-last, in [0, 1]), rebuilt into square images and read by a small CNN trained
from scratch (three blocks of two 3x3 convolutions with batch norm, `conv_width` channels
doubling per block, max pooling, then global average pooling) whose features join the MLP's
input. Training images get light augmentation: a random shift of up to an eighth of the side
(`crop`) and a horizontal flip (`flip`). Every other column is a number. The MLP is two
hidden layers (SiLU, dropout), trained with AdamW on mini-batches; it stops when the loss on
the fold's validation part has not improved for `patience` epochs (without one, 10% of the
training rows are held out for it) and keeps the best epoch's weights. Loss per task:
binary cross-entropy, cross-entropy over all the task's classes, or MSE on the standardised
target (log1p first for RMSLE: runtime.recipe_steps.log_target with absolute=False, since on
diamonds_mae the network scored worse on log1p(y) under absolute errors; L1 for MAE and median
absolute error).

Runs on the GPU when there is one (with torch's deterministic algorithms switched on, and the
forward pass in bfloat16 mixed precision for images). Fits
are deterministic for a fixed seed as long as `max_seconds` does not cut training short (the
cap ends the fit after the current epoch, so a capped fit depends on the machine's speed).

Params: runtime/params.py declares them (SPACES["neural"]).
"""

import os
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from runtime.params import SPACES, Data
from runtime.recipe_steps import TargetScale, TaskModel


def task_loss(task: dict, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A network's training loss for the task: cross-entropy (multiclass), binary cross-entropy
    on one logit, L1 for absolute errors (the median's loss, not the mean's), else MSE; `out` is
    (n, k) or (n, 1), `target` class codes, 0/1 floats or standardised values."""
    kind = task["task_type"]
    if kind == "multiclass":
        return nn.functional.cross_entropy(out, target)
    if kind == "binary":
        return nn.functional.binary_cross_entropy_with_logits(out[:, 0], target)
    if task.get("metric") in ("mae", "medae"):
        return nn.functional.l1_loss(out[:, 0], target)
    return nn.functional.mse_loss(out[:, 0], target)


def target_tensor(kind: str, values, device) -> torch.Tensor:
    """Targets as task_loss reads them: class codes (multiclass), else floats (0/1, or values
    already on the learnt scale)."""
    return torch.tensor(np.asarray(values), dtype=torch.int64 if kind == "multiclass" else torch.float32, device=device)


class ConvBranch(nn.Module):
    """(n, 3, s, s) images -> (n, 4 * width) features: three blocks of two 3x3 convolutions
    (batch norm, SiLU), max pooling after each, then global average pooling."""

    def __init__(self, width: int):
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU(),
                       nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = c_in

    def forward(self, x):
        """(n, 3, s, s) -> (n, out_dim)."""
        return self.body(x)


class Net(nn.Module):
    """Numbers, category embeddings and each image's CNN features, concatenated, through an MLP
    of two hidden layers (hidden, hidden // 2; SiLU, dropout)."""

    def __init__(self, n_num: int, vocab: list, out_dim: int, hidden: int, dropout: float, n_images: int = 0,
                 conv_width: int = 32):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(v, min(16, round(1.6 * v ** 0.56))) for v in vocab)
        self.conv = ConvBranch(conv_width) if n_images else None
        width = n_num + sum(e.embedding_dim for e in self.embeddings) + (n_images * self.conv.out_dim if n_images else 0)
        self.body = nn.Sequential(
            nn.Linear(width, hidden), nn.SiLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2), nn.SiLU(), nn.Dropout(dropout),
            nn.Linear(hidden // 2, out_dim),
        )

    def forward(self, num, cat, img=None):
        """(n, out_dim) raw outputs (logits, or the standardised value)."""
        parts = [num] + [emb(cat[:, i]) for i, emb in enumerate(self.embeddings)]
        if self.conv is not None:  # img: (n, images per row, 3, s, s)
            parts += [self.conv(img[:, j]) for j in range(img.shape[1])]
        return self.body(torch.cat(parts, dim=1))


class Model(TaskModel):
    """The torch network (Net) trained with early stopping; probabilities through sigmoid / softmax."""

    def __init__(self, task: dict, params: dict):
        super().__init__(task, params)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda":
            # Same seed, same predictions on the GPU too (the check fits twice and compares):
            # deterministic kernels, and the cuBLAS workspace setting they need.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)

    def fit(self, X, y, X_valid=None, y_valid=None) -> "Model":
        """Train the network with AdamW on mini-batches; keep the epoch with the best loss on the
        validation part (10% of the training rows when there is none)."""
        n = X.shape[0]
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else []
        self.img_cols = [c for c in columns if str(c).startswith("img__")]
        images = bool(self.img_cols)
        p = self.resolved = SPACES["neural"].resolve(self.params, Data(n=n, columns=len(columns), images=images,
                                                                      gpu=self.device == "cuda"))
        seed = p["seed"]
        torch.manual_seed(seed)
        # Small batches through a small net: one thread is fastest (two were 2.3x slower on 2
        # cores); convolutions and large data use the kernel's OMP_NUM_THREADS.
        torch.set_num_threads(p["threads"])
        if X_valid is None or y_valid is None:  # hold out 10% for early stopping
            rng = np.random.RandomState(seed)
            held = rng.rand(n) < 0.1
            held[rng.randint(n)] = True  # at least one row
            X, X_valid, y, y_valid = self._rows(X, ~held), self._rows(X, held), np.asarray(y)[~held], np.asarray(y)[held]
            n = X.shape[0]
        self.cat_cols = [c for c in columns if str(c).startswith("cat__")]
        names = [str(c).split("__")[1] for c in self.img_cols]
        self.n_images = len(dict.fromkeys(names))
        self.side = int(round((len(self.img_cols) / max(1, self.n_images) / 3) ** 0.5)) if images else 0
        num, cat, img = self._tensors(X)
        self.vocab = [int(cat[:, i].max()) + 1 if len(cat) else 1 for i in range(cat.shape[1])]
        target = self._target(np.asarray(y), fit=True)
        vnum, vcat, vimg = self._tensors(X_valid)
        vtarget = self._target(np.asarray(y_valid))
        self.net = self.network(num.shape[1], self.k if self.kind == "multiclass" else 1).to(self.device)
        optimizer = self.optimizer(self.net)
        batch, patience, max_seconds = p["batch_size"], p["patience"], p["max_seconds"]
        generator = torch.Generator().manual_seed(seed)
        started, best, best_state, waited = time.time(), float("inf"), None, 0
        for _ in range(p["max_epochs"]):
            self.net.train()
            order = torch.randperm(n, generator=generator).to(self.device)
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                if len(idx) < 2 and n >= 2:
                    continue
                optimizer.zero_grad()
                batch_img = self._augment(img[idx], generator) if images else img
                with self._precision():
                    out = self.net(num[idx], cat[idx], batch_img)
                loss = self._loss(out.float(), target[idx])
                loss.backward()
                optimizer.step()
            valid_loss = self._loss(self._outputs(vnum, vcat, vimg), vtarget).item()
            if valid_loss < best - 1e-6:
                best, waited = valid_loss, 0
                best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            else:
                waited += 1
            if waited >= patience or time.time() - started > max_seconds:
                break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        return self

    def network(self, n_num: int, out_dim: int) -> nn.Module:
        """The network for n_num number columns, the fitted vocabularies and images."""
        p = self.resolved
        return Net(n_num, self.vocab, out_dim, p["hidden"], p["dropout"], self.n_images, p["conv_width"])

    def optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        """AdamW with the declared learning rate and weight decay."""
        return torch.optim.AdamW(net.parameters(), lr=self.resolved["lr"], weight_decay=self.resolved["weight_decay"])

    def predict(self, X) -> np.ndarray:
        """Regression: values on the target's scale; binary: sigmoid; multiclass: softmax."""
        out = self._outputs(*self._tensors(X))
        if self.kind == "regression":
            return self.target.inverse(out[:, 0].cpu().numpy().astype(float))
        if self.kind == "binary":
            return torch.sigmoid(out[:, 0]).cpu().numpy().astype(float)
        return torch.softmax(out, dim=1).cpu().numpy().astype(float)

    # -- pieces ---------------------------------------------------------------------------

    @staticmethod
    def _rows(X, mask):
        """The rows where mask is true (a frame keeps a fresh 0..n index)."""
        return X.iloc[np.flatnonzero(mask)].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[mask]

    def _tensors(self, X):
        """(numbers, category codes, images (n, images per row, 3, s, s) or an empty tensor)."""
        img = torch.zeros(0)
        if isinstance(X, pd.DataFrame):
            cat = X[self.cat_cols].to_numpy(dtype=np.int64) if self.cat_cols else np.zeros((len(X), 0), dtype=np.int64)
            num = X.drop(columns=self.cat_cols + self.img_cols).to_numpy(dtype=np.float32)
            if self.img_cols:
                pixels = X[self.img_cols].to_numpy(dtype=np.float32).reshape(len(X), self.n_images, self.side, self.side, 3)
                img = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 1, 4, 2, 3))).to(self.device)
        else:
            num = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)
            cat = np.zeros((len(num), 0), dtype=np.int64)
        num = np.nan_to_num(num, nan=0.0, posinf=0.0, neginf=0.0)
        if hasattr(self, "vocab"):  # codes never seen in training fall back to 0
            cat = np.where(cat < np.asarray(self.vocab, dtype=np.int64), cat, 0) if cat.shape[1] else cat
        return torch.from_numpy(num).to(self.device), torch.from_numpy(np.clip(cat, 0, None)).to(self.device), img

    def _augment(self, img, generator):
        """Light augmentation of a training batch: a random shift of up to side / 8 pixels
        (reflect-padded) and a horizontal flip, each image its own."""
        b, m, c, s, _ = img.shape
        if self.resolved["crop"]:
            pad = max(1, s // 8)
            padded = nn.functional.pad(img.reshape(b * m, c, s, s), (pad, pad, pad, pad), mode="reflect")
            dy, dx = (torch.randint(0, 2 * pad + 1, (b * m,), generator=generator).to(self.device) for _ in range(2))
            rows = (torch.arange(s, device=self.device)[None, :] + dy[:, None])[:, :, None]
            cols = (torch.arange(s, device=self.device)[None, :] + dx[:, None])[:, None, :]
            img = padded[torch.arange(b * m, device=self.device)[:, None, None], :, rows, cols]  # (b*m, s, s, c)
            img = img.permute(0, 3, 1, 2).reshape(b, m, c, s, s)
        if self.resolved["flip"]:
            flip = (torch.rand(b, generator=generator) < 0.5).to(self.device)
            img = torch.where(flip[:, None, None, None, None], img.flip(-1), img)
        return img

    def _precision(self):
        """bfloat16 autocast for the convolutions on a GPU; full precision otherwise."""
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.device == "cuda" and bool(self.img_cols))

    def _target(self, y: np.ndarray, fit: bool = False) -> torch.Tensor:
        """The target as a tensor: regression standardised (log1p first where the scale logs;
        fitted on the training part), binary as floats, multiclass as codes."""
        if self.kind == "regression":
            if fit:
                self.target = TargetScale.fitted(self.task, self.resolved["log_target"], y, standardise=True, absolute=False)
            y = self.target.forward(y)
        return target_tensor(self.kind, y, self.device)

    def _loss(self, out, target):
        """The task's training loss (task_loss)."""
        return task_loss(self.task, out, target)

    def _outputs(self, num, cat, img, batch: int = 1024):
        """The network's outputs in evaluation mode, in batches, as float32."""
        self.net.eval()
        parts = []
        with torch.no_grad(), self._precision():
            for i in range(0, len(num), batch):
                parts.append(self.net(num[i:i + batch], cat[i:i + batch], img[i:i + batch] if len(img) else img).float())
        return torch.cat(parts)
