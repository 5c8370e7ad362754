"""Run every benchmark (``make bench``); figures go to bench/results/*.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "core"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "prune"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "execution"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "studies"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "recipes"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "analysis"))

import bench_analysis  # noqa: E402
import bench_checkpoints  # noqa: E402
import bench_cohorts  # noqa: E402
import bench_dask  # noqa: E402
import bench_demo  # noqa: E402
import bench_draw  # noqa: E402
import bench_engine  # noqa: E402
import bench_gradual  # noqa: E402
import bench_loader  # noqa: E402
import bench_techniques  # noqa: E402

if __name__ == "__main__":
    bench_engine.main()
    bench_draw.main()
    bench_techniques.main()
    bench_gradual.main()
    bench_loader.main()
    bench_dask.main()
    bench_checkpoints.main()
    bench_cohorts.main()
    bench_demo.main()
    bench_analysis.main()
