"""Write BENCHMARKS.md from the figures `make bench` just measured.

Reads criterion's estimates (target/criterion) and the load run's JSON
(target/bench/load.json); prints Markdown on stdout.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRITERION = ROOT / "target" / "criterion"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def estimate(bench_dir: Path) -> dict:
    data = json.loads((bench_dir / "new" / "estimates.json").read_text())
    return {k: data[k]["point_estimate"] for k in ("mean", "median")}


AUTHORIZER_ZIP_TARGET = 4_000_000  # bytes: 4 MB


def package_sizes() -> list[str]:
    """The deployment package section, from target/bench/sizes.json (infra/bench/sizes.py)."""
    sizes = json.loads((ROOT / "target" / "bench" / "sizes.json").read_text())
    out = ["## Deployment package size\n"]
    out.append(
        "Each function's `bootstrap` as `make build` (`sam build`, cargo-lambda, arm64, the "
        "release profile: fat LTO, one codegen unit, abort on panic, stripped) produces it, "
        "and zipped with deflate as Lambda receives it. A smaller package downloads faster on "
        "a cold start. Target: authorizer under 4 MB (4,000,000 bytes) zipped.\n"
    )
    out.append("Command: `make build` (it runs `infra/bench/sizes.py`)\n")
    out.append("| function | bootstrap | zipped |\n|---|---|---|")
    for name, s in sorted(sizes.items()):
        out.append(
            f"| {name} | {s['bootstrap_bytes'] / 1e6:.2f} MB | {s['zip_bytes'] / 1e6:.2f} MB |"
        )
    authorizer = sizes.get("AuthorizerFunction")
    if authorizer:
        verdict = "meets" if authorizer["zip_bytes"] < AUTHORIZER_ZIP_TARGET else "misses"
        out.append(
            f"\nThe authorizer's package is {authorizer['zip_bytes'] / 1e6:.2f} MB zipped: "
            f"it {verdict} the 4 MB target.\n"
        )
    else:
        out.append("")
    return out


def main() -> None:
    load = json.loads((ROOT / "target" / "bench" / "load.json").read_text())
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    out = []
    out.append("# Benchmarks\n")
    out.append(
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.machine()}, {rustc}.\n"
        "Every figure below is reproduced by `make bench`; the command for each is given.\n"
    )
    out.append("## In-process decision time, excluding DynamoDB\n")
    out.append(
        "The whole handler (event parsing, key checksum, SHA-256, cache, IP and scope checks, "
        "planning the conditional write, building the response, the JSON log line) over a store "
        "that answers instantly. Release profile. Target: median under 20 µs.\n"
    )
    out.append("Command: `cargo bench -p keygate-tests --bench decision`\n")
    out.append("| case | median | mean |\n|---|---|---|")
    for case in sorted(CRITERION.glob("decision_*")):
        if not (case / "new" / "estimates.json").exists():
            continue
        e = estimate(case)
        name = case.name.removeprefix("decision_")
        out.append(f"| {name} | {e['median'] / 1000:.2f} µs | {e['mean'] / 1000:.2f} µs |")
    out.append("")
    out.append("## Load run against the local emulator\n")
    out.append(
        f"{load['concurrency']} warm authorizer instances (one per task) deciding on one key for "
        f"{load['seconds']} s against the moto emulator over HTTP, then the same concurrency "
        "issuing raw conditional `UpdateItem` ADDs to the same emulator for the same time.\n"
    )
    out.append(
        "Command: `infra/local/with-emulator target/release/bench-load "
        f"{load['seconds']} {load['concurrency']}`\n"
    )
    out.append("| figure | value |\n|---|---|")
    out.append(f"| decisions | {load['decisions']} ({load['allowed']} allowed) |")
    out.append(f"| decisions per second | {load['decisions_per_second']:.1f} |")
    out.append(f"| latency p50 | {load['p50_us'] / 1000:.2f} ms |")
    out.append(f"| latency p99 | {load['p99_us'] / 1000:.2f} ms |")
    out.append(f"| DynamoDB requests per decision | {load['ddb_requests_per_decision']:.3f} |")
    out.append(
        f"| emulator raw conditional writes per second | {load['raw_conditional_writes_per_second']:.1f} |"
    )
    out.append(f"| authorizer / raw throughput | {load['ratio_to_raw']:.2f} (target 0.8) |")
    out.append("")
    out.append(
        "The emulator (a Python server applying one request at a time) is the bottleneck here, "
        "so latencies are queueing in the emulator, not DynamoDB's. The ratio compares our "
        "conditional write (version check, quota, rate and usage counters in one expression) with "
        "the simplest conditional ADD, both as the emulator executes them.\n"
    )
    out.extend(package_sizes())
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
