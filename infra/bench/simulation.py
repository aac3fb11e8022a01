"""The simulation at full scale (issue 14) in BENCHMARKS.md.

Renders target/bench/sim.json (written by `bench-sim`) and, beside it, the
committed baseline infra/bench/sim-baseline.json: today's design (one
allowance item) run through the same simulation, so a new allowance design
is read against it.

`report.py` includes `section()` in the whole BENCHMARKS.md (`make bench`);
`python3 infra/bench/simulation.py BENCHMARKS.md` replaces only this
section in place (`make bench-sim`), leaving the other measurements as they
were.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "target" / "bench" / "sim.json"
BASELINE = ROOT / "infra" / "bench" / "sim-baseline.json"
TITLE = "## Simulation at full scale: one key at 1,000 to 50,000 decisions/s"


# Prices, us-east-1, on demand (the same as the cost table above): Lambda
# arm64 per GB-second and per request, DynamoDB per write and read request unit.
LAMBDA_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
WRU = 0.625 / 1e6
RRU = 0.125 / 1e6
MEMORY_GB = 0.125


def cost_per_million(f: dict) -> float:
    """Keygate's own cost of a million decisions, from the measured units:
    Lambda requests, Lambda duration at the p50 latency (billed per ms, 128
    MB), DynamoDB write and read units."""
    import math

    duration = math.ceil(f["latency_p50_ms"]) / 1000 * MEMORY_GB * LAMBDA_GB_SECOND
    dynamo = f["write_units_per_decision"] * WRU + f["read_units_per_decision"] * RRU
    return (LAMBDA_REQUEST + duration + dynamo) * 1e6


def _table(sim: dict) -> list:
    out = [
        "| scenario | offered | allowed | allowed/s | allowed/s, 2nd half | over-admitted "
        "| under-admitted | failed closed | refused | throttles | requests / decision "
        "| WCU / allowed | WCU / allowed, 2nd half "
        "| RCU / decision | requests / limit denial | largest item | p50 / p99 | containers "
        "| $ / million decisions |",
        "|" + "---|" * 19,
    ]
    for row in sim["scenarios"]:
        f = row["figures"]
        flood = f["requests_per_limit_denial"]
        late = f.get("allowed_per_second_late")
        late_units = f.get("write_units_per_allowed_late")
        mark = " (earlier run)" if row.get("commit") else ""
        out.append(
            f"| {row['scenario']['name']}{mark} | {f['decisions']:,} | {f['allowed']:,} "
            f"| {f['allowed_per_second']:,.0f} "
            f"| {'-' if late is None else f'{late:,.0f}'} | {f['over_admitted']} "
            f"| {f['under_admitted']:,} | {f['denied_by_error']:,} | {f['rejected_at_cap']:,} "
            f"| {f['throttles']:,} "
            f"| {f['requests_per_decision']:.2f} | {f['write_units_per_allowed']:.2f} "
            f"| {'-' if late_units is None else f'{late_units:.2f}'} "
            f"| {f['read_units_per_decision']:.3f} "
            f"| {'-' if flood is None else f'{flood:.3f}'} "
            f"| {f['largest_item_bytes']:,} B "
            f"| {f['latency_p50_ms']:.0f} / {f['latency_p99_ms']:.0f} ms | {f['containers']} "
            f"| ${cost_per_million(f):.2f} |"
        )
    best = max(sim["scenarios"], key=lambda r: r["figures"]["allowed_per_second"])
    out.append("")
    out.append(
        f"Most allowed per second in any scenario: {best['figures']['allowed_per_second']:,.0f} "
        f"({best['scenario']['name']}).\n"
    )
    return out


READING = (
    "Reading it (the sharded allowance, `shared/src/store/allowance-design.md`): every "
    "scenario starts on one allowance item, as every key does, and grows it while the "
    "load runs (100 admissions a second on one item takes it to 4 shards, a throttled "
    "write straight to 16, then 64). Over-admissions stay 0 in every scenario. (1) Scale: "
    "at 10,000/s the key allows 10,000 a second once grown (the 2nd-half column), and a "
    "burst from 100/s to 10,000/s is absorbed as it comes (40,100 of 40,100 allowed). The "
    "first second of a steady run that starts at 10,000/s on one item is lost to growth: "
    "decisions held through throttle pauses fill Lambda's 1,000 containers and later "
    "requests are refused (the refused column). 50,000/s still loses more while it grows. "
    "(2) Cost: once grown an allowed decision costs 1.00-1.02 write units at 10,000/s with "
    "no rate limit (the 2nd-half column; a 30 s run, `target/release/bench-sim 30 '10000/s "
    "steady, no limits'`, measures the same with the usage flushes included) and keygate's "
    "cost is $0.89-0.97 per million decisions: the issue's $1.00 is met. (3) Floods: a "
    "client retrying after its quota ran out (quota flood) costs 0.015 requests per denial "
    "in 5 s (its reads of the key record and the owner's plan, and one refused write, per "
    "container; 0.006 over 15 s), and one sending 100 times its per-second rate (rate "
    "flood) 0.041-0.055 in 5 s (0.046 over 15 s at 10,000/s, `target/release/bench-sim 15 "
    "'10000/s steady, rate flood'`): the issue's 0.05 holds once a flood lasts longer than "
    "its first seconds, when every new container pays its first reads. The quota near and "
    "rate near rows are not floods but races at the limit: every busy container must learn "
    "once per window that the last units are gone, and no design that asks DynamoDB once "
    "per container per window can cost less than containers / denials per window (the "
    "design note). (4) The plan rows: ten keys of one owner, without limits of their own, "
    "sharing a plan at 10,000/s in all. Their plan allowance grows onto shards like a key's "
    "(1 -> 16 on the first throttle) and is never over-admitted. With a rate of 8,000/s and "
    "a daily quota of 25,000 both limits are reached: 24,999 of the 25,000 an exact limiter "
    "allows. With its quota far, the plan allows 10,000 a second once grown, at 1.01 write "
    "units per allowed decision: the plan's spend is the decision's one write. "
    "(5) The largest item written is the root with the day's detail (~3 KB, flushed by each "
    "container every 30-60 s); shard items stay under 500 bytes.\n"
)


def section() -> list:
    out = [TITLE + "\n"]
    out.append(
        "The real authorizer (`authorizer::Handler`, with its `DynamoStore` and the real "
        "aws-sdk-dynamodb client) over an in-process DynamoDB model, in virtual time "
        "(`tests/src/sim/`): the SDK's HTTP client answers DynamoDB's JSON protocol from a "
        "model with DynamoDB's conditional writes and expressions, 1,000 write units/s and "
        "3,000 read units/s per partition over a sliding second (`ThrottlingException` "
        "beyond), the service's unit accounting (a write 1 WCU per started KB of the larger "
        "image, failed conditions charged; a read 1 RCU per 4 KB, half when eventual; an eventual read sees the item as it "
        "stood a second before), and a "
        "log-normal latency per request (p50 4 ms, p99 12 ms: an assumption around DynamoDB's "
        "documented single-digit milliseconds). Each container is one authorizer with its own "
        "SDK client (the function's timeouts and 2 attempts), cache and counter hints, "
        "deciding one request at a time; a new one starts (50 ms) when all are busy, up to "
        "1,000, beyond which requests are refused. One key, used on 30 routes from 200 addresses. Steady: the rate from the "
        "start, containers warm. Burst: 1 s at 1% of the rate, then the full rate. Limits: "
        "a daily quota of 100x (far) or 0.2x (near: exhausted, then a flood) the offered "
        "decisions; a per-second rate limit of 10x (far) or 0.8x (near) the offered rate. The "
        "no-limit, quota-far and rate-far runs start at 23:59:58 UTC, so the day rolls over "
        "during them.\n"
    )
    out.append(
        "Columns: offered is the requests sent; over-admitted is allowed beyond the quota in "
        "any day or beyond the rate limit in any window (must be 0); under-admitted is what "
        "an exact limiter without capacity limits would have allowed of the same requests "
        "minus what was allowed; failed closed is decisions answered `error` (throttled or "
        "timed out; some would have been limit denials anyway); refused is requests no "
        "container was free for (all 1,000 busy: Lambda's concurrency limit, no decision, "
        "no access); throttles counts requests DynamoDB refused, SDK retries included; requests "
        "and units are every request the model answered, per decision made (refused "
        "requests excluded) or per allowed decision; requests / limit denial is the authorizer's own count per decision denied "
        "`quota_exceeded` or `rate_limited`; latency runs from a request's arrival to its "
        "answer (a new container's start included), over the decisions made; $ / million "
        "decisions is keygate's own cost recomputed from the measured units: Lambda "
        "($0.20 per million requests, the p50 latency billed per ms at 128 MB, $0.0000133334 "
        "per GB-s) and DynamoDB on demand ($0.625 per million write units, $0.125 per million "
        "read units), without API Gateway's own $1.00. Figures move by "
        "a few percent between runs: the SDK's retry backoff is randomly jittered.\n"
    )
    base = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    if RUN.exists():
        sim = json.loads(RUN.read_text())
        out.append(f"Command: `{sim['command']}`. Code simulated: commit {sim['commit']}.\n")
        earlier = sorted({r["commit"] for r in sim["scenarios"] if r.get("commit")})
        if earlier:
            out.append(
                "Rows marked (earlier run) were measured at an earlier commit and not run "
                "again for this one (the whole table takes most of an hour on a loaded 2-core "
                f"machine); they are from commit {', '.join(earlier)}, kept as measured.\n"
            )
        if base is not None and base["commit"] == sim["commit"]:
            out.append("This run is the baseline below.\n")
        else:
            out.extend(_table(sim))
            out.append("")
            out.append(READING)
    else:
        out.append("(not run in this measurement: no target/bench/sim.json)\n")
    if base is not None:
        out.append(
            f"### Baseline: today's design (one allowance item), commit {base['commit']}\n"
        )
        out.append(
            "Every allowed decision is one conditional `UpdateItem` on the key's one allowance "
            "item, which also carries the day's usage counters (about 3 KB with 30 routes and "
            "20 addresses, so 3 write units per decision). Kept in "
            "`infra/bench/sim-baseline.json` (the same command's output) to compare a new "
            "allowance design against.\n"
        )
        out.append(
            "Reading it: one item lives in one partition, 1,000 write units/s, so at 3 KB the "
            "key tops out at about 333 allowed decisions/s, and after midnight, with two days "
            "of counters on the item (about 5.8 KB, 6 units), at about 166/s. Every rate above "
            "that ends in throttling, decisions failed closed (`error`), and at 10,000/s and "
            "beyond containers held by failing decisions until Lambda's 1,000 are all busy. "
            "Failed conditions are charged like writes: quota denials cost a failed write "
            "plus the denial count (about 2 requests and 6 units each), and with per-second "
            "rate windows every busy container's first write of each window misses (its hint "
            "is a window old) and is charged too, so the rate-limited runs allow least. "
            "Over-admissions stay at 0 throughout: the conditional write is exact, it just "
            "does not scale.\n"
        )
        out.extend(_table(base))
        out.append("")
    return out


def splice(path: Path) -> None:
    """Replace this section of the Markdown file at `path` (or append it)."""
    text = path.read_text()
    new = "\n".join(section()) + "\n"
    start = text.find(TITLE)
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + new)
        return
    end = text.find("\n## ", start + len(TITLE))
    rest = "" if end < 0 else text[end + 1 :]
    path.write_text(text[:start] + new + ("\n" + rest if rest else ""))


if __name__ == "__main__":
    splice(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "BENCHMARKS.md")
