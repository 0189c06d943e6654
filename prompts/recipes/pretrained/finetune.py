"""Pretrained track, fine-tuning: the text and image encoders trained end to end on one fold.

When the plan sets `finetune`, the pretrained Model hands its fit to `FineTuned`: a network of
the pretrained encoders (all-MiniLM-L6-v2 for each text column, mean-pooled over its tokens and
L2-normalised; EfficientNet-Lite0 for each image column, its last feature map averaged over
space) whose outputs, beside the table's standardised numbers and one-hot levels, feed one new
linear layer. That layer starts as a linear probe: the frozen recipe's head (its C chosen over
inner folds) fitted on the pretrained encoders' outputs for the fold's training rows, so
fine-tuning starts from the frozen recipe's kind of model and moves the pretrained features less
than from a random head would (LP-FT: Kumar et al., 2022). Everything then trains with AdamW
(`encoder_lr` for the encoders, `head_lr` for the new layer, a linear warm-up over the first
tenth of the steps, then a linear decay), for at most `epochs` passes, `max_steps` steps or
`tune_seconds` per fold. After each epoch the loss on the fold's validation part (10% of the
training rows when there is none) decides, the probe counting as epoch 0: the best epoch's
weights are kept (the probe's, when no epoch beats it), and training stops after `patience`
epochs without a better one. Losses are the neural recipe's (task_loss); regression learns the
standardised target (log1p first where runtime.recipe_steps.log_target says so).

Its inputs come from the pretrained Features in fine-tune mode: `tok__<column>__<i>` token ids
(tokenised once for the run by `encode`, -1 past each text's end; each batch is cut to its
longest text), `path__<column>` image files (decoded once per kernel by runtime.images, at
`image_size`: 224 on a GPU, 96 on a CPU unless the plan says), and the numbers. Batch norm
keeps its ImageNet statistics (small batches would make them noise). On CUDA the forward pass
runs in bfloat16 mixed precision (float16 with loss scaling where bfloat16 is missing) with
torch's deterministic algorithms, so a fixed seed gives the same predictions, as the check wants.

A fitted FineTuned pickles with its network on the CPU, so `iml predict` and solution.py run it
on any machine.

Params: runtime/params.py declares them (SPACES["pretrained"]).
"""

import copy
import math
import os
import time

import numpy as np
import torch
from torch import nn

from prompts.recipes.neural.model import target_tensor, task_loss
from prompts.recipes.pretrained.features import image_encoder, text_model_path
from runtime.images import load_images
from runtime.params import SPACES, Data
from runtime.recipe_steps import TargetScale, TaskModel

WEIGHT_DECAY = 0.01  # AdamW's, on every weight: the usual setting for fine-tuning transformers
WARMUP = 0.1  # share of the planned steps over which the learning rate rises to its value
DROPOUT = 0.1  # before the new layer
PREDICT_BATCH = 64  # rows per forward pass when predicting


class TunedNet(nn.Module):
    """The encoders and one linear layer over their pooled outputs and the table's numbers."""

    def __init__(self, text_encoder, n_texts: int, image_net, n_images: int, n_table: int, out_dim: int):
        super().__init__()
        self.text = text_encoder
        self.image = image_net
        width = n_texts * (text_encoder.config.hidden_size if text_encoder is not None else 0) + n_table
        if image_net is not None:
            with torch.no_grad():
                width += n_images * image_net.eval()(torch.zeros(1, 3, 32, 32)).shape[1]
        self.head = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(width, out_dim))

    def forward(self, texts: list, images: list, table: torch.Tensor) -> torch.Tensor:
        """texts: (ids, mask) per text column; images: (n, 3, s, s) normalised pixels per image
        column; table: (n, t). Returns (n, out_dim) raw outputs."""
        return self.head(self.features(texts, images, table))

    def features(self, texts: list, images: list, table: torch.Tensor) -> torch.Tensor:
        """What the new layer reads: each text's mean-pooled tokens (L2-normalised, as the frozen
        recipe embeds them), each image's pooled map, the table."""
        parts = []
        for ids, mask in texts:
            hidden = self.text(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
            parts.append(nn.functional.normalize(pooled.float(), dim=1))  # as the frozen embeddings are
        parts += [self.image(x) for x in images]
        parts.append(table)
        return torch.cat([p.float() for p in parts], dim=1)

    def train(self, mode: bool = True):
        """Train mode, but batch norm layers keep their pretrained statistics."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


class FineTuned(TaskModel):
    """The encoders fine-tuned on one fold's rows, early stopping on its validation part."""

    def __init__(self, task: dict, params: dict, frozen: type):
        """frozen: the frozen recipe's Model class, whose linear head is the probe fine-tuning
        starts from (passed in by that Model: this module does not import it back)."""
        super().__init__(task, params)
        self.frozen = frozen
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.target = None

    # -- fit --------------------------------------------------------------------------------

    def fit(self, X, y, X_valid=None, y_valid=None) -> "FineTuned":
        """Train the network; keep the epoch with the lowest validation loss."""
        y = np.asarray(y)
        self.columns(X)
        p = self.resolved = SPACES["pretrained"].resolve(
            self.params, Data(n=len(X), images=bool(self.paths), gpu=self.device == "cuda"))
        torch.manual_seed(p["seed"])
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
        if self.device == "cuda":  # same seed, same predictions (the check fits twice and compares)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        if X_valid is None or y_valid is None:  # hold out 10% for early stopping
            rng = np.random.RandomState(p["seed"])
            held = rng.rand(len(X)) < 0.1
            held[rng.randint(len(X))] = True
            X, X_valid, y, y_valid = X[~held], X[held], y[~held], y[held]
        if self.kind == "regression":
            self.target = TargetScale.fitted(self.task, p["log_target"], y, standardise=True)
        train, valid = self.inputs(X), self.inputs(X_valid)
        target = target_tensor(self.kind, self.target.forward(y) if self.target else y, "cpu")
        valid_target = target_tensor(self.kind, self.target.forward(y_valid) if self.target else y_valid, self.device)
        self.net = self.network(train["table"].shape[1]).to(self.device)
        self.probe(train, y)
        self.epochs_run, self.best_epoch, self.stopped = self.train_net(train, target, valid, valid_target)
        self.net.cpu()  # fitted: predictions move it where they run; pickles stay loadable anywhere
        return self

    def train_net(self, train: dict, target: torch.Tensor, valid: dict, valid_target: torch.Tensor) -> tuple:
        """The training loop: (epochs run, the best epoch, why it stopped)."""
        p = self.resolved
        n, batch = len(target), max(1, min(p["tune_batch_size"], len(target)))
        per_epoch = math.ceil(n / batch)
        planned = p["epochs"] * per_epoch if p["max_steps"] is None else min(p["epochs"] * per_epoch, p["max_steps"])
        optimizer = self.optimizer()
        warmup = max(1, int(WARMUP * planned))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (planned - s) / max(1, planned - warmup)))
        scaler = torch.amp.GradScaler("cuda", enabled=self.device == "cuda" and not self.bf16())
        generator = torch.Generator().manual_seed(p["seed"])
        started, steps, waited, stopped, epoch = time.time(), 0, 0, "epochs", 0
        best, best_epoch = task_loss(self.task, self.outputs(valid), valid_target).item(), 0  # the probe
        best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}
        for epoch in range(1, p["epochs"] + 1):
            self.net.train()
            for idx in torch.randperm(n, generator=generator).split(batch):
                if len(idx) < 2 <= n:  # batch-size-one steps are noise
                    continue
                optimizer.zero_grad(set_to_none=True)
                with self.precision():
                    out = self.net(*self.batch(train, idx.numpy()))
                loss = task_loss(self.task, out.float(), target[idx].to(self.device))
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                steps += 1
                if steps >= planned or (p["tune_seconds"] is not None and time.time() - started > p["tune_seconds"]):
                    stopped = "steps" if steps >= planned else "time"
                    break
            loss = task_loss(self.task, self.outputs(valid), valid_target).item()
            if loss < best - 1e-6:
                best, best_epoch, waited = loss, epoch, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}
            else:
                waited += 1
            if stopped != "epochs":
                break
            if waited >= p["patience"]:
                stopped = "early stopping"
                break
        self.net.load_state_dict(best_state)
        return epoch, best_epoch, stopped

    def probe(self, train: dict, y: np.ndarray) -> None:
        """Set the new layer to the frozen recipe's linear head (C over inner folds) fitted on the
        pretrained encoders' outputs for these rows; left as initialised when that head cannot
        be fitted (one class among the rows)."""
        from threadpoolctl import threadpool_limits

        if self.kind != "regression" and len(np.unique(y)) < 2:
            return
        self.net.eval()
        n, parts = len(y), []
        with torch.no_grad(), self.precision():
            for start in range(0, n, PREDICT_BATCH):
                parts.append(self.net.features(*self.batch(train, np.arange(start, min(n, start + PREDICT_BATCH)))))
        pooled = torch.cat(parts).float().cpu().numpy().astype(np.float64)
        frozen = self.frozen(self.task, {**self.params, "finetune": False})
        frozen.target = self.target
        with threadpool_limits(limits=1):  # many small solver steps: threads only add hand-offs
            frozen._fit_head(pooled, y)
        head = frozen.head
        weight, bias = np.atleast_2d(head.coef_).astype(np.float32), np.atleast_1d(head.intercept_).astype(np.float32)
        if self.kind == "multiclass":  # the classes this fold has, at their codes; the others unlikely
            present = np.asarray(head.classes_).astype(int)
            if len(present) == 2:  # two classes: one logit, the second's against the first's
                weight, bias = np.vstack([np.zeros_like(weight), weight]), np.array([0.0, bias[0]], np.float32)
            full_weight, full_bias = np.zeros((self.k, weight.shape[1]), np.float32), np.full(self.k, -10.0, np.float32)
            full_weight[present], full_bias[present] = weight, bias
            weight, bias = full_weight, full_bias
        layer = self.net.head[-1]
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(bias))

    def network(self, n_table: int) -> TunedNet:
        """The pretrained encoders the inputs need, and a new linear layer for the task."""
        p = self.resolved
        text = None
        if self.texts:
            from transformers import AutoModel

            text = AutoModel.from_pretrained(text_model_path(p["model_name"]))
        images, self.scaling = None, None
        if self.paths:
            images, self.scaling = image_encoder(p["image_model"])
        out_dim = self.k if self.kind == "multiclass" else 1
        return TunedNet(text, len(self.texts), images, len(self.paths), n_table, out_dim)

    def optimizer(self) -> torch.optim.Optimizer:
        """AdamW: the encoders at encoder_lr, the new layer at head_lr."""
        p = self.resolved
        head = list(self.net.head.parameters())
        known = {id(w) for w in head}
        body = [w for w in self.net.parameters() if id(w) not in known]
        groups = [{"params": head, "lr": p["head_lr"]}] + ([{"params": body, "lr": p["encoder_lr"]}] if body else [])
        return torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY)

    # -- inputs -----------------------------------------------------------------------------

    def columns(self, X) -> None:
        """Which of the features' columns are token ids (per text column), image files, numbers."""
        names = [str(c) for c in X.columns]
        self.texts = list(dict.fromkeys(c.split("__")[1] for c in names if c.startswith("tok__")))
        self.token_columns = {t: [c for c in names if c.startswith(f"tok__{t}__")] for t in self.texts}
        self.paths = [c for c in names if c.startswith("path__")]
        self.numbers = [c for c in names if not c.startswith(("tok__", "path__"))]

    def inputs(self, X) -> dict:
        """The rows as arrays: token ids per text column, image files per image column, the table."""
        return {"ids": [X[cols].to_numpy(dtype=np.int64) for cols in self.token_columns.values()],
                "paths": [X[c].to_numpy() for c in self.paths],
                "table": np.nan_to_num(X[self.numbers].to_numpy(dtype=np.float32)) if self.numbers
                else np.zeros((len(X), 0), dtype=np.float32)}

    def image_size(self) -> int:
        """Pixels per side the images are fine-tuned at: image_size, else 224 on a GPU, 96 on a CPU."""
        size = self.resolved["image_size"]
        return int(size) if size is not None else 224 if self.device == "cuda" else 96

    def batch(self, data: dict, idx: np.ndarray) -> tuple:
        """The network's arguments for these rows, on the device: each text cut to its batch's
        longest, each image decoded (cached per kernel) and normalised."""
        texts = []
        for ids in data["ids"]:
            rows = ids[idx]
            mask = rows >= 0
            length = max(1, int(mask.sum(axis=1).max()))
            texts.append((torch.from_numpy(np.where(mask, rows, 0)[:, :length]).to(self.device),
                          torch.from_numpy(mask[:, :length].astype(np.int64)).to(self.device)))
        images = []
        if data["paths"]:
            mean, std = (torch.tensor(v, device=self.device).view(1, 3, 1, 1) for v in self.scaling)
            for paths in data["paths"]:
                pixels = torch.from_numpy(load_images(paths[idx], self.image_size())).to(self.device)
                images.append((pixels.permute(0, 3, 1, 2).float() - mean) / std)
        return texts, images, torch.from_numpy(data["table"][idx]).to(self.device)

    # -- predict ----------------------------------------------------------------------------

    def bf16(self) -> bool:
        """Whether mixed precision uses bfloat16 (a CUDA device that has it)."""
        return self.device == "cuda" and torch.cuda.is_bf16_supported()

    def precision(self):
        """Mixed precision on CUDA (bfloat16, else float16); full precision on the CPU."""
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16 if self.bf16() else torch.float16,
                              enabled=self.device == "cuda")

    def outputs(self, data: dict) -> torch.Tensor:
        """The network's raw outputs for all rows of `data`, in evaluation mode, as float32."""
        self.net.eval()
        n = len(data["table"])
        parts = []
        with torch.no_grad(), self.precision():
            for start in range(0, n, PREDICT_BATCH):
                parts.append(self.net(*self.batch(data, np.arange(start, min(n, start + PREDICT_BATCH)))).float())
        return torch.cat(parts) if parts else torch.zeros((0, 1), device=self.device)

    def predict(self, X) -> np.ndarray:
        """Regression: values on the target's scale; binary: (n,) P(class 1); multiclass: (n, k)."""
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.net.to(self.device)
        out = self.outputs(self.inputs(X))
        self.net.cpu()
        if self.kind == "regression":
            return self.target.inverse(out[:, 0].cpu().numpy().astype(float))
        if self.kind == "binary":
            return torch.sigmoid(out[:, 0]).cpu().numpy().astype(float)
        return torch.softmax(out, dim=1).cpu().numpy().astype(float)

    def __getstate__(self) -> dict:
        """Pickled on the CPU (a copy when the network sits on the GPU)."""
        state = dict(self.__dict__)
        if "net" in state and next(state["net"].parameters()).device.type != "cpu":
            state["net"] = copy.deepcopy(state["net"]).cpu()
        return state
