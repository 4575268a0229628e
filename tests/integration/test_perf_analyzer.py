"""A short run of the stock Triton perf_analyzer against chilld (it reads
the model metadata, config and statistics, then drives binary infer requests
at fixed concurrency) must complete with zero errors, and chilld must count
no failed request: with the tensors in the HTTP body, in system shared memory
and, on the CUDA backend, in CUDA shared memory (perf_analyzer registers the
regions; its C++ client rejects an answer that describes an output in a region
with anything but name, datatype and shape). Where perf_analyzer cannot run
(no binary; venv.sh installs one), the body's load is driven by
bench/server_load.py's Python client and the test says so."""
import os
import sys

import pytest

import lib

sys.path.insert(0, os.path.join(lib.ROOT, "bench"))
import server_load  # noqa: E402

SHAPE = [1, 2, 32, 16]


@pytest.fixture(scope="module")
def server():
    with lib.Chilld({"batching": {"enabled": True, "max_queue_delay_us": 500}}) as s:
        yield s


def failed_requests(server):
    series = lib.parse_metrics(server.metrics())
    return sum(v for (n, ls), v in series.items() if n == "chill_requests_total" and dict(ls).get("code") != "200")


MEMORY = ["none", "system"] + (["cuda"] if lib.BACKEND == "cuda" else [])


@pytest.mark.parametrize("memory", MEMORY)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_load_completes_without_errors(server, concurrency, memory):
    before = failed_requests(server)
    seconds = 1.5 * lib.SLOW
    pa = server_load.find_perf_analyzer()
    if pa is None and memory != "none":
        pytest.skip("perf_analyzer is not runnable here, and only it registers shared memory")
    if memory != "none" and concurrency > 1 and "tsan" in lib.BUILD:
        pytest.skip("perf_analyzer has every request in flight write its output into one region, "
                    "which ThreadSanitizer reports as a race between chilld's threads")
    if pa is not None:
        res = server_load.perf_analyzer(server.url(), "causal", SHAPE, "FP16", concurrency, seconds, pa, memory)
        assert "error" not in res["log"].lower(), res["log"][-2000:]
        # perf_analyzer's server stages are read from chilld's statistics extension
        assert res["stages_us"]["Server Compute Infer"] > 0, res["stages_us"]
    else:
        print("perf_analyzer is not runnable here; driving the same load with bench/server_load.py")
        res = server_load.python_load(server.url(), "causal", SHAPE, "FP16", concurrency, seconds)
        assert res["requests"] > 0
    assert res["errors"] == 0, res
    assert res["rps"] > 0, res
    assert failed_requests(server) == before, "chilld counted failed requests during the run"


if __name__ == "__main__":
    lib.run_tests(globals())
