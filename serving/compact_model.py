"""Champions in a prediction-only form: LightGBM model text plus a few numbers in JSON.

Unpickling a champion imports ``training.models``, and importing the ``lightgbm`` package
imports scikit-learn, SciPy and pandas: about ten seconds of every server start, for a
request path that only calls ``predict_array``. The compact form keeps each booster as the
model text LightGBM itself wrote and evaluates it with LightGBM's own library
(``lib_lightgbm``, loaded with ctypes, the same C calls ``lightgbm.Booster.predict`` makes),
and keeps the calibration and the P90 band as plain numbers.

What a champion predicts from its boosters' raw scores lives once, in
``training.prediction`` (numpy only): the estimators and the classes here both call it. A
compact form is written only after it reproduced the full model's predictions exactly on
probe rows (``verified_compact``), and is read only while the code of those rules is
unchanged (``rules_digest``); a model class this module does not know is simply served
from its pickle as before.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from training import prediction

#: Version of the files below; a different one is not read (the pickle serves instead).
FORMAT = 2
_PREDICT_NORMAL = 0
_DTYPE_FLOAT32, _DTYPE_FLOAT64 = 0, 1
_ROW_MAJOR = 1

#: Modules whose code defines what a champion predicts from its boosters.
RULES = ("training.prediction",)

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _library() -> ctypes.CDLL:
    """``lib_lightgbm`` from the installed package, without running the package's imports."""
    global _lib
    with _lib_lock:
        if _lib is None:
            spec = importlib.util.find_spec("lightgbm")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("lightgbm is not installed")
            folder = Path(next(iter(spec.submodule_search_locations)))
            candidates = (folder / "lib" / "lib_lightgbm.so", folder / "lib_lightgbm.so")
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise ImportError(f"no lib_lightgbm.so under {folder}")
            lib = ctypes.cdll.LoadLibrary(str(path))
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            _lib = lib
        return _lib


def rules_digest() -> str:
    """Digest of the prediction rules' source files, found without importing them."""
    h = hashlib.sha256()
    for name in RULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"{name} not found")
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]


def _check(code: int) -> None:
    if code != 0:
        raise RuntimeError(_library().LGBM_GetLastError().decode(errors="replace"))


class NativeBooster:
    """A LightGBM booster from its model text, predicting with ``num_threads=1`` like
    ``lightgbm.Booster.predict(x, num_threads=1)`` on a float64 matrix."""

    def __init__(self, model_text: str) -> None:
        lib = _library()
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int(0)
        _check(
            lib.LGBM_BoosterLoadModelFromString(
                model_text.encode(), ctypes.byref(iterations), ctypes.byref(self._handle)
            )
        )
        features = ctypes.c_int(0)
        _check(lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(features)))
        self.num_feature = features.value
        self._parameter = b"num_threads=1"

    def predict(self, x: np.ndarray) -> np.ndarray:
        # LightGBM's own rule: float32 and float64 pass as they are, anything else as float32
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        mat = np.ascontiguousarray(x, dtype=dtype)
        if mat.ndim != 2 or mat.shape[1] != self.num_feature:
            raise ValueError(f"expected rows of {self.num_feature} features, got {mat.shape}")
        out = np.empty(mat.shape[0], dtype=np.float64)
        if mat.shape[0] == 0:
            return out
        written = ctypes.c_int64(0)
        _check(
            _library().LGBM_BoosterPredictForMat(
                self._handle,
                mat.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(_DTYPE_FLOAT64 if mat.dtype == np.float64 else _DTYPE_FLOAT32),
                ctypes.c_int32(mat.shape[0]),
                ctypes.c_int32(mat.shape[1]),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_char_p(self._parameter),
                ctypes.byref(written),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        if written.value != mat.shape[0]:
            raise RuntimeError(f"LightGBM wrote {written.value} predictions for {len(out)} rows")
        return out

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value and _lib is not None:
            _lib.LGBM_BoosterFree(handle)


class CompactStockout:
    """``StockoutRiskModel.predict_array``: booster probability, then its calibration
    (``training.prediction``)."""

    def __init__(self, texts: dict[str, str], meta: dict[str, Any]) -> None:
        self.texts = texts  # each booster's model text, for ``serving.score_memo``
        self.booster = NativeBooster(texts["booster"])
        self.feature_names_ = tuple(meta["features"])
        cal = meta.get("calibration")
        self.method = None if cal is None else cal["method"]
        self.cal = cal or {}
        self.x_ = np.asarray(self.cal.get("x", ()), dtype=float)
        self.y_ = np.asarray(self.cal.get("y", ()), dtype=float)

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        raw = self.booster.predict(x)
        if self.method is None:
            return raw
        if self.method == "isotonic":
            return prediction.calibrated(raw, "isotonic", x=self.x_, y=self.y_)
        return prediction.calibrated(raw, "sigmoid", a=self.cal["a"], b=self.cal["b"])


class CompactDelivery:
    """``DeliveryQuantileModel.predict_array``: the P50 booster's quantile and the banded
    P90 (``training.prediction``)."""

    def __init__(self, texts: dict[str, str], meta: dict[str, Any]) -> None:
        self.texts = texts  # each booster's model text, for ``serving.score_memo``
        self.booster = NativeBooster(texts["booster"])
        self.booster90 = NativeBooster(texts["booster90"]) if "booster90" in texts else None
        self.feature_names_ = tuple(meta["features"])
        self.init = float(meta["init"])
        self.init90 = float(meta.get("init90") or 0.0)
        band = meta["band"]
        self.additive = band["mode"] == "additive"
        self.pooled = float(band["pooled"])
        self.corrections: dict[str, float] = {k: float(v) for k, v in band["corrections"].items()}
        self.group_index = [self.feature_names_.index(g) for g in meta["band_groups"]]

    def groups(self, x: np.ndarray) -> np.ndarray:
        return prediction.group_keys(np.asarray(x)[:, self.group_index])

    def predict_array(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p50 = prediction.quantile(self.booster.predict(x), self.init)
        raw90 = None if self.booster90 is None else self.booster90.predict(x)
        groups = np.asarray(x)[:, self.group_index]
        factor = prediction.group_factors(groups, self.corrections, self.pooled)
        return p50, prediction.delivery_upper(p50, raw90, self.init90, factor, self.additive)


def _floats(a: Any) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=float)]


def describe(model: Any) -> tuple[dict[str, str], dict[str, Any]] | None:
    """(model texts by name, metadata) of a champion this module can serve, else None."""
    kind = type(model).__name__
    text = getattr(model, "model_str_", None)
    features = getattr(model, "feature_names_", None)
    if not isinstance(text, str) or features is None:
        return None
    texts = {"booster": text}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "rules": rules_digest(),
        "kind": kind,
        "features": list(features),
    }
    if kind == "StockoutRiskModel":
        cal = getattr(model, "calibration_", None)
        if cal is None:
            meta["calibration"] = None
        elif cal.method_ == "isotonic":
            meta["calibration"] = {"method": "isotonic", "x": _floats(cal.x_), "y": _floats(cal.y_)}
        else:
            meta["calibration"] = {"method": "sigmoid", "a": float(cal.a_), "b": float(cal.b_)}
        return texts, meta
    if kind == "DeliveryQuantileModel":
        band = model.band_
        text90 = getattr(model, "model_str90_", None)
        if isinstance(text90, str):
            texts["booster90"] = text90
        meta.update(
            init=float(model.init_),
            init90=float(model.init90_) if isinstance(text90, str) else None,
            band_groups=list(model.band_groups),
            band={
                "mode": band.mode,
                "pooled": float(band.pooled_.correction_),
                "corrections": {str(k): float(v) for k, v in band.corrections_.items()},
            },
        )
        return texts, meta
    return None


def build(texts: dict[str, str], meta: dict[str, Any]) -> CompactStockout | CompactDelivery:
    if meta.get("format") != FORMAT:
        raise ValueError(f"compact model format {meta.get('format')!r}, expected {FORMAT}")
    if meta["kind"] == "StockoutRiskModel":
        return CompactStockout(texts, meta)
    if meta["kind"] == "DeliveryQuantileModel":
        return CompactDelivery(texts, meta)
    raise ValueError(f"no compact form for {meta['kind']}")


def probe_rows(meta: dict[str, Any], rows: int = 400, seed: int = 0) -> np.ndarray:
    """Rows that reach many leaves and every band group the model knows (the group columns
    take each group's own values, plus values no group has)."""
    rng = np.random.default_rng(seed)
    width = len(meta["features"])
    x: np.ndarray = rng.normal(0.0, 1.0, (rows, width)) * rng.choice(
        [1.0, 10.0, 100.0, 1000.0], (rows, width)
    )
    x[rng.random((rows, width)) < 0.05] = np.nan
    band_groups = meta.get("band_groups") or []
    keys = list((meta.get("band") or {}).get("corrections", {}))
    if band_groups and keys:
        index = [meta["features"].index(g) for g in band_groups]
        for i in range(rows):
            parts = keys[i % len(keys)].split(">")
            if len(parts) == len(index) and i % 5:
                x[i, index] = [float(p) for p in parts]
            else:
                x[i, index] = np.round(x[i, index])
    return x


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


def verified_compact(model: Any) -> tuple[dict[str, str], dict[str, Any]] | None:
    """The compact form of ``model`` when it predicts exactly what the model predicts on
    probe rows (whole batches and single rows); None otherwise."""
    described = describe(model)
    if described is None:
        return None
    texts, meta = described
    try:
        compact = build(texts, meta)
        x = probe_rows(meta)
        if not _same(model.predict_array(x), compact.predict_array(x)):
            return None
        for i in range(0, len(x), 37):
            if not _same(model.predict_array(x[i : i + 1]), compact.predict_array(x[i : i + 1])):
                return None
    except Exception:
        return None
    return texts, meta


def write(folder: Path, texts: dict[str, str], meta: dict[str, Any]) -> None:
    """``<name>.txt`` per booster, then ``compact.json`` naming them (the JSON appears
    last, whole: its presence means the form is complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    meta = {**meta, "boosters": sorted(texts)}
    tmp = folder / "compact.json.tmp"
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    tmp.replace(folder / "compact.json")


def read(folder: Path) -> CompactStockout | CompactDelivery | None:
    """The compact model cached in ``folder``, or None when there is none."""
    meta_path = folder / "compact.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("rules") != rules_digest():
        return None  # written under other prediction code: the pickle serves and rewrites it
    texts = {n: (folder / f"{n}.txt").read_text(encoding="utf-8") for n in meta["boosters"]}
    return build(texts, meta)
