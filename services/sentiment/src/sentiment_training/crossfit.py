"""``python -m sentiment_training.crossfit`` (``make train-crossfit``): out-of-fold views from encoders adapted
without the fold they score, for ``python -m sentiment_training.train --cross-fitted``.

The shipped encoder adaptation (``sentiment_training.adapt``) is fitted on all of train.jsonl. Heads chosen on
its embeddings choose from out-of-fold scores of texts the encoder has already pulled apart by label: their
calibration, thresholds, mixture weights and neutral bias are set for a separation that unseen text does not
have (round nineteen: the needs head's cross-validated micro-F1 on train 0.856, against 0.735 on eval.jsonl,
with 71 eval texts given no need against 56 that have none). Here each fold of the heads' own CV folds
(``train.stratified_splits``, the first ``CROSS_FIT_REPEATS`` repeats) gets an adapter fitted on its other
folds only (the shipped settings, its own seed), every training text is embedded by the service's encoder with
that adapter merged (int8 on onnxruntime, from an adapter file of float16 factors as the shipped one), and
the fold is scored by what the training run would fit on the other folds: the sentiment logistic regression
at each C of the grid, sentimentai's packaged heads, the needs attention view and the nearest-neighbour view.
The views that do not read the encoder (the letter n-gram heads) are left to train.

Only train.jsonl is read. Each fold's adapter and views are written as they finish (under ``--out``, in a folder
keyed by train.jsonl's digest and the adapter settings), so an interrupted run goes on where it stopped; the
finished file is ``--out``'s ``cross_fitted.npz``. Four to five minutes a fold on two cores (239 to 297 s in
round twenty), nearly all of it the adapter fit: about 45 minutes for the ten.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sentiment_training import train as T

#: Two of the heads' three repeats: ten adapter fits (about an hour on two cores) instead of fifteen.
CROSS_FIT_REPEATS = 2
ADAPTER_SEED_BASE = 1000
DEFAULT_OUT = Path("build/crossfit")
RESULT_FILE = "cross_fitted.npz"


@dataclass(frozen=True)
class CrossFittedViews:
    """Out-of-fold views over train.jsonl, one array per repeat of the heads' folds (``splits[:repeats]``)."""

    train_sha256: str
    adapter_settings: dict[str, Any]
    repeats: int
    sentiment_lr: dict[float, list[T.FloatArray]]  # C -> per repeat (n, 3) probabilities
    packaged: dict[tuple[str, str], list[T.FloatArray]]  # packaged head -> per repeat (n, 3) probabilities
    attention: list[T.FloatArray]  # per repeat (n, 16) logits
    knn: list[T.FloatArray]  # per repeat (n, 16) logits

    def sha256(self) -> str:
        """A digest of the views' contents (a saved file's bytes carry the time it was written)."""
        digest = hashlib.sha256(json.dumps([self.train_sha256, self.adapter_settings, self.repeats],
                                           sort_keys=True).encode())
        arrays = [*(a for c in sorted(self.sentiment_lr) for a in self.sentiment_lr[c]),
                  *(a for key in sorted(self.packaged) for a in self.packaged[key]), *self.attention, *self.knn]
        for array in arrays:
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"meta": np.array(json.dumps({
            "train_sha256": self.train_sha256, "adapter_settings": self.adapter_settings, "repeats": self.repeats}))}
        for r in range(self.repeats):
            for c, per_repeat in self.sentiment_lr.items():
                arrays[f"r{r}.lr.{c:g}"] = per_repeat[r]
            for key, per_repeat in self.packaged.items():
                arrays[f"r{r}.packaged.{'-'.join(key)}"] = per_repeat[r]
            arrays[f"r{r}.attention"] = self.attention[r]
            arrays[f"r{r}.knn"] = self.knn[r]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            np.savez_compressed(out, **arrays)


def load_cross_fitted(path: Path) -> CrossFittedViews:
    with np.load(path, allow_pickle=False) as arrays:
        meta = json.loads(str(arrays["meta"]))
        repeats = int(meta["repeats"])
        return CrossFittedViews(
            train_sha256=meta["train_sha256"], adapter_settings=meta["adapter_settings"], repeats=repeats,
            sentiment_lr={c: [arrays[f"r{r}.lr.{c:g}"] for r in range(repeats)] for c in T.SENTIMENT_C_GRID},
            packaged={key: [arrays[f"r{r}.packaged.{'-'.join(key)}"] for r in range(repeats)]
                      for key in T.PACKAGED_HEADS},
            attention=[arrays[f"r{r}.attention"] for r in range(repeats)],
            knn=[arrays[f"r{r}.knn"] for r in range(repeats)],
        )


def adapter_settings() -> dict[str, Any]:
    """What an adapter fit depends on besides the data: a cross-fitted file of other settings is refused."""
    from sentiment_training import adapt

    return {"version": adapt.ADAPTER_VERSION, "layers": list(adapt.ADAPTED_LAYERS), "rank": adapt.RANK,
            "alpha": adapt.ALPHA, "epochs": adapt.EPOCHS, "batch": adapt.BATCH, "lora_lr": adapt.LORA_LR,
            "head_lr": adapt.HEAD_LR, "temperature": adapt.TEMPERATURE, "seed_base": adapt.SEED + ADAPTER_SEED_BASE}


def fold_views(data: T.TrainingSet, embeddings: T.FloatArray, states: list[npt.NDArray[np.float32]],
               tr: T.IntArray, te: T.IntArray) -> dict[str, T.FloatArray]:
    """The encoder-reading views of fold ``te``, fitted on ``tr``, from one adapted encoder's output."""
    from sentimentai._scoring import load_packaged_head, probs_with_head

    from sentiment.heads import attention_forward, pack_states
    from sentiment.model import EMBEDDING_MODEL

    views: dict[str, T.FloatArray] = {}
    for c in T.SENTIMENT_C_GRID:
        views[f"lr.{c:g}"] = T.fit_sentiment_lr(embeddings[tr], data.labels[tr], c).predict_proba(embeddings[te])
    for key in T.PACKAGED_HEADS:
        views[f"packaged.{'-'.join(key)}"] = np.asarray(
            probs_with_head(embeddings[te], load_packaged_head(EMBEDDING_MODEL, *key)), dtype=np.float64)
    attention = T.fit_needs_attention(pack_states([states[i] for i in tr]), data.needs[tr])
    views["attention"] = np.asarray(attention_forward(pack_states([states[i] for i in te]), attention.query,
                                                      attention.value, attention.bias)[0], dtype=np.float64)
    views["knn"] = T.needs_neighbours(embeddings[tr], data.needs[tr], data.languages[tr]).logits(embeddings[te])
    return views


def run(out: Path, repeats: int = CROSS_FIT_REPEATS) -> CrossFittedViews:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from sentiment.encoder import E5Encoder, load_adapter
    from sentiment.heads import EMBEDDING_DIM
    from sentiment.model import embed_with_states
    from sentiment_training.adapt import SEED, AdapterTrainer, Labels
    from sentiment_training.evaluate import default_data_file, read_items

    path = default_data_file("train.jsonl")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    settings = adapter_settings()
    # Only what the folds need: the texts, labels and languages (no embedding of the whole set here).
    items = read_items(path)
    data = T.TrainingSet(
        items=items, sha256=digest, embeddings=np.zeros((len(items), EMBEDDING_DIM)),
        labels=T.label_indices(items), languages=np.array([item["lang"] for item in items]),
        needs=T.needs_matrix(items), packaged={}, lexical=None)
    strata = [f"{item['lang']}/{item['label']}" for item in items]
    splits = T.stratified_splits(strata, folds=T.FOLDS, repeats=T.REPEATS, seed=T.SEED)[:repeats]
    # The folds' cache is keyed by what they depend on: a changed train.jsonl or setting starts afresh.
    cache = out / ("folds-" + hashlib.sha256(json.dumps([digest, settings], sort_keys=True).encode()).hexdigest()[:16])
    cache.mkdir(parents=True, exist_ok=True)
    trainer: AdapterTrainer | None = None
    views: dict[str, list[T.FloatArray]] = {}
    for r, repeat in enumerate(splits):
        for f, (tr, te) in enumerate(repeat):
            fold_file = cache / f"fold-r{r}-f{f}.npz"
            if fold_file.exists():
                with np.load(fold_file, allow_pickle=False) as saved:
                    meta = json.loads(str(saved["meta"]))
                    if meta != {"train_sha256": digest, "adapter_settings": settings}:
                        raise SystemExit(f"{fold_file} is of other training data or adapter settings: remove it")
                    fold = {key: saved[key] for key in saved.files if key not in ("meta", "te")}
            else:
                started = time.monotonic()
                # The fold's adapter is kept too: a failure after its fit (minutes) does not repeat it.
                adapter_file = cache / f"adapter-r{r}-f{f}.npz"
                if adapter_file.exists():
                    adapter = load_adapter(adapter_file)
                else:
                    if trainer is None:
                        trainer = AdapterTrainer([item["text"] for item in items])
                    trainer.fit(tr, Labels(needs=data.needs, sentiment=data.labels),
                                seed=SEED + ADAPTER_SEED_BASE + 100 * r + f, log=False).save(adapter_file)
                    adapter = load_adapter(adapter_file)  # float16 factors, as the shipped adapter file
                embedded, states = embed_with_states(E5Encoder(adapter=adapter),
                                                     [item["text"] for item in items])
                with threadpool_limits(limits=2):
                    fold = fold_views(data, embedded.astype(np.float64), states, tr, te)
                saved_arrays: dict[str, Any] = {
                    "meta": np.array(json.dumps({"train_sha256": digest, "adapter_settings": settings})),
                    "te": te, **fold}
                with fold_file.open("wb") as handle:
                    np.savez_compressed(handle, **saved_arrays)
                print(f"  repeat {r + 1}/{repeats} fold {f + 1}/{len(repeat)}: {time.monotonic() - started:.0f} s",
                      flush=True)
            for key, value in fold.items():
                views.setdefault(key, [np.zeros((len(items), value.shape[1])) for _ in range(repeats)])[r][te] = value
    result = CrossFittedViews(
        train_sha256=digest, adapter_settings=settings, repeats=repeats,
        sentiment_lr={c: views[f"lr.{c:g}"] for c in T.SENTIMENT_C_GRID},
        packaged={key: views[f"packaged.{'-'.join(key)}"] for key in T.PACKAGED_HEADS},
        attention=views["attention"], knn=views["knn"])
    result.save(out / RESULT_FILE)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment_training.crossfit", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the folds and the result are written")
    args = parser.parse_args(argv)
    run(args.out)
    print(f"wrote {args.out / RESULT_FILE}; train the heads on it: "
          f"python -m sentiment_training.train --cross-fitted {args.out / RESULT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
