"""Compiled tree runtimes against LightGBM's own ``predict(num_threads=1)`` on 200-row batches.

Two steps, because the compilers are not project dependencies:

1. with the project's environment, write the served champions' boosters as LightGBM model
   files plus a sample of real candidate rows::

       python -m benchmarks.bench_tree_runtime dump --home .routecast --out .routecast/trees

2. in an environment with ``lightgbm treelite tl2cgen lleaves onnxruntime onnxmltools``::

       python benchmarks/bench_tree_runtime.py compare --models .routecast/trees

``compare`` times each runtime on the same batches and reports the largest difference from
LightGBM's output (raw scores; the stockout booster's probabilities), so "identical" is
measured, not assumed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 200


def dump(home: Path, out: Path) -> None:
    """Model files of the champions (as the server loads them) and real feature rows."""
    from datetime import UTC, datetime

    from serving.runtime import Runtime
    from serving.settings import Settings

    rt = Runtime(Settings(home=home, database_url=f"sqlite:///{out / 'ledger.db'}"))
    out.mkdir(parents=True, exist_ok=True)
    rt.start(background=False)
    stock, deliv = rt.models.get("stockout"), rt.models.get("delivery")
    assert stock is not None and deliv is not None and rt.snapshot is not None
    (out / "stockout.txt").write_text(stock.model.model_str_)
    for alpha, text in deliv.model.model_strs_.items():
        (out / f"delivery_p{int(alpha * 100)}.txt").write_text(text)
    # real candidate rows: every node × a sample of SKUs, gathered like the request path
    from features import catalog
    from routing.geo import haversine_km

    snap = rt.snapshot
    keys = list(snap.node_sku_index)[: BATCH * 20]
    cols = snap.gather([k[0] for k in keys], [k[1] for k in keys], ["NY"] * len(keys))  # type: ignore[index]
    cols["qty"] = np.ones(len(keys))
    cols["weekday"] = np.full(len(keys), float(datetime.now(UTC).weekday()))
    cols["distance_km"] = haversine_km(cols["node_lat"], cols["node_lon"], 40.75, -73.99)
    np.save(out / "x_stockout.npy", np.column_stack([cols[f] for f in catalog.STOCKOUT_FEATURES]))
    np.save(out / "x_delivery.npy", np.column_stack([cols[f] for f in catalog.DELIVERY_FEATURES]))
    rt.stop()


def _time(fn: Any, batches: list[np.ndarray], repeat: int) -> tuple[float, float]:
    fn(batches[0])
    lat = []
    for _ in range(repeat):
        for b in batches:
            t0 = time.perf_counter()
            fn(b)
            lat.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(lat), float(np.percentile(lat, 99))


def _compare_one(name: str, path: Path, x_all: np.ndarray, repeat: int) -> dict[str, Any]:
    import lightgbm as lgb

    batches = [
        np.ascontiguousarray(x_all[i : i + BATCH]) for i in range(0, len(x_all) - BATCH + 1, BATCH)
    ]
    booster = lgb.Booster(model_file=str(path))
    ref = np.concatenate([booster.predict(b, num_threads=1) for b in batches])
    res: dict[str, Any] = {"trees": booster.num_trees(), "features": x_all.shape[1]}
    p50, p99 = _time(lambda b: booster.predict(b, num_threads=1), batches, repeat)
    res["lightgbm"] = {"p50_us": round(p50, 1), "p99_us": round(p99, 1), "max_abs_diff": 0.0}

    def record(label: str, fn: Any, compile_s: float) -> None:
        got = np.concatenate([np.asarray(fn(b)).reshape(-1) for b in batches])
        q50, q99 = _time(fn, batches, repeat)
        res[label] = {
            "p50_us": round(q50, 1),
            "p99_us": round(q99, 1),
            "max_abs_diff": float(np.max(np.abs(got - ref))),
            "identical": bool(np.array_equal(got, ref)),
            "compile_seconds": round(compile_s, 1),
        }

    try:
        import tl2cgen
        import treelite

        t0 = time.perf_counter()
        tl_model = treelite.frontend.load_lightgbm_model(str(path))
        lib = Path(tempfile.mkdtemp()) / f"{name}.so"
        tl2cgen.export_lib(tl_model, toolchain="gcc", libpath=str(lib), params={})
        predictor = tl2cgen.Predictor(str(lib), nthread=1)
        compile_s = time.perf_counter() - t0
        record(
            "tl2cgen",
            lambda b: predictor.predict(tl2cgen.DMatrix(b, dtype="float64")),
            compile_s,
        )
    except Exception as exc:  # a runtime that fails is a finding, not a crash
        res["tl2cgen"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        import lleaves

        t0 = time.perf_counter()
        ll = lleaves.Model(model_file=str(path))
        ll.compile(cache=str(Path(tempfile.mkdtemp()) / f"{name}.ll.o"))
        compile_s = time.perf_counter() - t0
        record("lleaves", lambda b: ll.predict(b, n_jobs=1), compile_s)
    except Exception as exc:
        res["lleaves"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        import onnxmltools
        import onnxruntime as ort
        from onnxmltools.convert.common.data_types import FloatTensorType

        t0 = time.perf_counter()
        onx = onnxmltools.convert_lightgbm(
            booster, initial_types=[("x", FloatTensorType([None, x_all.shape[1]]))]
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(onx.SerializeToString(), opts)
        compile_s = time.perf_counter() - t0
        outs = [o.name for o in sess.get_outputs()]
        pick = outs[-1] if name == "stockout" else outs[0]

        def run_onnx(b: np.ndarray) -> np.ndarray:
            got = sess.run([pick], {"x": b.astype(np.float32)})[0]
            if isinstance(got, list):  # probabilities as a list of {class: p}
                return np.array([d[1] for d in got])
            arr = np.asarray(got)
            return arr[:, 1] if arr.ndim == 2 and arr.shape[1] == 2 else arr.reshape(-1)

        record("onnxruntime", run_onnx, compile_s)
    except Exception as exc:
        res["onnxruntime"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return res


def compare(models: Path, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "batch_rows": BATCH,
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "models": {},
    }
    for name in ("stockout", "delivery_p50", "delivery_p90"):
        x_all = np.load(models / ("x_stockout.npy" if name == "stockout" else "x_delivery.npy"))
        res = _compare_one(name, models / f"{name}.txt", x_all, repeat)
        out["models"][name] = res
        print(json.dumps({name: res}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--home", type=Path, default=Path(".routecast"))
    d.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare")
    c.add_argument("--models", type=Path, required=True)
    c.add_argument("--repeat", type=int, default=5)
    c.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.cmd == "dump":
        dump(args.home.resolve(), args.out.resolve())
        return
    res = compare(args.models, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
