#!/usr/bin/env python3
"""Where an alert's cost goes: buckets of a callgrind or perf profile of alertgate.

Reads the profile of a gateway run (see README, "Where the time goes") and
prints, per thread kind (tokio workers, store-writer, store-checkpoint,
other) and per bucket, the cost per alert:

  callgrind  instructions (Ir) per alert, from `--separate-threads=yes` dumps
  perf       CPU share (and CPU us/alert with --cpu-us), from `perf script` of a
             `perf record --call-graph dwarf` profile

    profile_buckets.py callgrind --alerts 100000 cg.out.1-*
    perf script -i perf.data -F comm,tid,ip,sym,dso | profile_buckets.py perf --alerts 100000 -

A function is put in a bucket by its module path (src/ingest/* -> parse,
src/rules/* and src/engine/* -> rules, src/store/sqlite/* -> SQL glue,
SQLite's C functions -> SQL, hyper/axum/tokio -> HTTP, ...). Functions of
no bucket of their own (malloc, memcpy, core::, alloc::, hashbrown, serde's
generic glue, jiff, ...) are charged to whoever called them: in a perf
sample to the nearest caller on the stack that has a bucket (exact); in a
callgrind profile, which has no stacks, to their callers in proportion to
the calls' inclusive cost (an approximation). Within SQLite, the work
below sqlite3BtreeCommitPhaseOne/Two (writing the WAL, calling fsync) is
"commit", below sqlite3_prepare "sqlprep", below subjournalPage (the
statement journal of a SAVEPOINT) "subjournal"; the writer's once-a-second
timer tick is "tick" (under callgrind, which runs ~50x slower, it is
reported per tick rather than per alert). Time waiting for the disk is not
CPU and shows in neither profiler: profile.sh measures it with `perf trace`.
"""
import argparse
import collections
import re
import sys

BUCKETS = [
    ("http", "HTTP + body read (hyper, axum, tokio I/O + scheduler, auth)"),
    ("parse", "JSON parse of the payload (src/ingest, serde_json, timestamps)"),
    ("fingerprint", "fingerprint (model::fingerprint)"),
    ("rules", "dedup decision, rule matching, routing, group key (src/model, src/rules, src/engine)"),
    ("templates", "template rendering (minijinja)"),
    ("encode", "JSON encoding of labels/annotations (workers: store::ops; writer: incident labels, timeline)"),
    ("handoff", "channel hand-off to/from the writer (tokio mpsc/oneshot, wake-ups)"),
    ("sqlglue", "store code around the SQL (src/store/sqlite, rusqlite, statement cache)"),
    ("sqlprep", "SQL compile: sqlite3_prepare (statement cache misses, SAVEPOINT/RELEASE)"),
    ("sql", "SQL statement execution (libsqlite3: step/btree/bind/reset)"),
    ("subjournal", "SQLite statement journal of the per-request SAVEPOINT (page copies to a temp file)"),
    ("commit", "commit: SQLite WAL write + fsync call (CPU)"),
    ("checkpoint", "WAL checkpoint (store-checkpoint thread)"),
    ("tick", "the timer tick (1/s: expiring alerts past endsAt, SLA and grouping timers)"),
    ("metrics", "metrics and logging (prometheus, tracing, api::ingest counting)"),
    ("other", "everything else (unattributed)"),
]
BUCKET_NAMES = [b for b, _ in BUCKETS]

# Functions whose cost is charged to their caller.
NEUTRAL_PREFIXES = (
    "core::", "alloc::", "std::", "hashbrown::", "hashlink::", "foldhash::", "serde::", "serde_core::",
    "serde_json::", "serde_path_to_error::", "jiff::", "memchr::", "smallvec::", "itoa::", "ryu::",
    "__rustc::", "__rust", "<&", "<[", "<(", "<*", "_<", "indexmap::", "once_cell::", "arc_swap::",
    "parking_lot::", "lock_api::", "bytes::", "futures_util::", "futures_core::", "pin_project",
)
NEUTRAL_C = re.compile(
    r"^(_?_?(libc_)?(malloc|free|calloc|realloc|cfree|memalign|posix_memalign|_mid_memalign)|_int_\w+|unlink_chunk|"
    r"malloc_\w+|tcache_\w+|__mem\w+|mem\w+|__str\w+|str\w+|__pthread\w*|pthread_\w+|___pthread\w*|"
    r"__lll_\w+|__GI_\w+|__libc_\w+|_dl_\w+|__tls_get_addr|__errno_location|clock_gettime|__clock_gettime\w*|"
    r"__vdso\w*|syscall|__syscall\w*|__futex\w*|futex_\w+|__wcs\w+|\?\?\?|0x[0-9a-f]+)"
)
COMMIT_MARKERS = ("sqlite3BtreeCommitPhaseOne", "sqlite3BtreeCommitPhaseTwo")
PREPARE_MARKERS = ("sqlite3_prepare_v2", "sqlite3_prepare_v3", "sqlite3_prepare")
SUBJOURNAL_MARKERS = ("subjournalPage", "subjournalPageIfRequired")


def is_marker(name, markers):
    return name.split(".", 1)[0].split("'", 1)[0] in markers
# Ordered: the first match wins. Matched against the function's own path
# (for `<A as B>::f`, A first, then B).
PATH_RULES = [
    ("alertgate::model::fingerprint", "fingerprint"),
    ("alertgate::rules::template", "templates"),
    ("minijinja", "templates"),
    ("alertgate::ingest", "parse"),
    ("alertgate::store::ops", "encode"),
    # The store's handle on the caller's task: encoding (inlined), then the send.
    ("alertgate::store::Store::ingest_from", "encode"),
    ("alertgate::store::Store::write", "handoff"),
    ("alertgate::store::sqlite::checkpointer", "checkpoint"),
    ("alertgate::store::sqlite", "sqlglue"),
    ("alertgate::store", "sqlglue"),
    ("rusqlite", "sqlglue"),
    ("libsqlite3_sys", "sqlglue"),
    ("alertgate::model", "rules"),
    ("alertgate::rules", "rules"),
    ("alertgate::engine", "rules"),
    ("alertgate::sla", "rules"),
    ("alertgate::notify", "rules"),
    ("alertgate::oncall", "rules"),
    ("regex", "rules"),
    ("aho_corasick", "rules"),
    ("tokio::sync::mpsc", "handoff"),
    ("tokio::sync::oneshot", "handoff"),
    ("tokio::sync::task::atomic_waker", "handoff"),
    ("alertgate::metrics", "metrics"),
    ("alertgate::api::ingest", "metrics"),
    ("prometheus", "metrics"),
    ("tracing", "metrics"),
    ("alertgate::api", "http"),
    ("alertgate::auth", "http"),
    ("alertgate::server", "http"),
    ("alertgate::connections", "http"),
    ("alertgate::web", "http"),
    ("hyper", "http"),
    ("axum", "http"),
    ("tower", "http"),
    ("http_body", "http"),
    ("http::", "http"),
    ("httparse", "http"),
    ("httpdate", "http"),
    ("matchit", "http"),
    ("governor", "http"),
    ("mio::", "http"),
    ("socket2", "http"),
    ("tokio::", "http"),
]


def strip_generics(s):
    out, depth = [], 0
    for ch in s:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def own_paths(name):
    """For `<A as B>::f` the candidates A and B; else the name itself."""
    if name.startswith("<"):
        depth, i = 0, 0
        for i, ch in enumerate(name):
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
                if depth == 0:
                    break
        inner = name[1:i]
        # split at the top-level " as "
        depth, cut = 0, -1
        for j, ch in enumerate(inner):
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
            elif depth == 0 and inner.startswith(" as ", j):
                cut = j
                break
        if cut >= 0:
            return [inner[:cut], inner[cut + 4:]]
        return [inner]
    return [name]


def classify(name, is_sqlite, thread):
    """The bucket of a function, or None when its cost goes to its caller."""
    if is_sqlite:
        return "checkpoint" if thread == "store-checkpoint" else "sql"
    if name.startswith("core::ptr::drop_in_place"):
        return None
    if "alertgate::store::sqlite::SqliteStore as alertgate::store::Backend>::write" in name:
        return "handoff"
    for cand in own_paths(name):
        if "::" not in cand and NEUTRAL_C.match(cand):
            return None
        path = strip_generics(cand).lstrip("&* ")
        if path.startswith("mut "):
            path = path[4:]
        if thread == "store-writer" and path.startswith("serde_json::"):
            return "encode"
        if path.startswith(NEUTRAL_PREFIXES):
            continue
        for prefix, bucket in PATH_RULES:
            if path.startswith(prefix):
                if thread == "store-writer" and bucket == "http":
                    # tokio on the writer thread: waking the caller's task.
                    return "handoff"
                if thread == "store-checkpoint" and bucket in ("sqlglue", "sql"):
                    return "checkpoint"
                return bucket
    return None


def thread_kind(names):
    joined = "\n".join(names)
    if "alertgate::store::sqlite::writer::run" in joined:
        return "store-writer"
    if "alertgate::store::sqlite::checkpointer" in joined:
        return "store-checkpoint"
    if "tokio::runtime::scheduler::multi_thread::worker::run" in joined or "multi_thread::worker::Context::run" in joined:
        return "tokio-worker"
    return "other-thread"


# ---------------------------------------------------------------- callgrind

def read_callgrind(path):
    """Self cost per function, inclusive cost per call arc, call counts."""
    names = {"fn": {}, "fl": {}}
    self_cost = collections.Counter()
    arcs = collections.Counter()
    calls = collections.Counter()
    file_of = {}
    cur_fn = cur_fl = None
    cfn = None
    pending_call = None
    total = 0

    def resolve(kind, value):
        m = re.match(r"\((\d+)\)(?: (.*))?$", value)
        if not m:
            return value
        key, text = m.group(1), m.group(2)
        if text is not None:
            names[kind][key] = text
            return text
        return names[kind].get(key, "?" + key)

    with open(path, errors="replace") as f:
        for line in f:
            if not line or line == "\n":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_call is not None:
                    arcs[(cur_fn, pending_call)] += cost
                    pending_call = None
                else:
                    self_cost[cur_fn] += cost
                continue
            key, _, value = line.rstrip("\n").partition("=")
            if key == "fn":
                cur_fn = resolve("fn", value)
                file_of.setdefault(cur_fn, cur_fl)
            elif key == "fl":
                cur_fl = resolve("fl", value)
            elif key in ("fi", "fe", "cfi", "cfl"):
                resolve("fl", value)
            elif key == "cfn":
                cfn = resolve("fn", value)
            elif key == "calls":
                pending_call = cfn
                calls[(cur_fn, cfn)] += int(value.split()[0])
            elif line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    return self_cost, arcs, calls, file_of, total


def callgrind_buckets(path):
    self_cost, arcs, calls, file_of, total = read_callgrind(path)
    funcs = set(self_cost) | {a for a, _ in arcs} | {b for _, b in arcs}
    kind = thread_kind(funcs)
    is_sql = {f: "sqlite3.c" in (file_of.get(f) or "") for f in funcs}
    bucket = {f: classify(f, is_sql[f], kind) for f in funcs}
    callers = collections.defaultdict(list)
    for (a, b), cost in arcs.items():
        if a != b and cost > 0:
            callers[b].append((a, cost))
    # Distribution of a neutral function's cost over buckets, through its callers.
    dist = {}
    for f in funcs:
        if bucket[f] is None:
            dist[f] = {"other": 1.0}
    for _ in range(12):
        changed = 0.0
        for f in funcs:
            if bucket[f] is not None:
                continue
            ins = callers.get(f)
            if not ins:
                new = {"other": 1.0}
            else:
                tot = float(sum(c for _, c in ins))
                new = collections.defaultdict(float)
                for a, c in ins:
                    w = c / tot
                    if bucket[a] is not None:
                        new[bucket[a]] += w
                    else:
                        for b, x in dist[a].items():
                            new[b] += w * x
            old = dist[f]
            changed += sum(abs(new.get(b, 0) - old.get(b, 0)) for b in set(new) | set(old))
            dist[f] = dict(new)
        if changed < 1e-9:
            break
    out = collections.Counter()
    top = collections.defaultdict(collections.Counter)
    for f, c in self_cost.items():
        if bucket[f] is not None:
            out[bucket[f]] += c
            top[bucket[f]][f] += c
        else:
            for b, x in dist[f].items():
                out[b] += c * x
                top[b][f] += c * x
    # Commit: SQLite's work below the commit phases (exact, from the arcs).
    commit = sum(c for (a, b), c in arcs.items() if is_marker(b, COMMIT_MARKERS) and not is_marker(a, COMMIT_MARKERS))
    prepare = sum(c for (a, b), c in arcs.items() if is_marker(b, PREPARE_MARKERS) and not is_sql.get(a))
    subjournal = sum(c for (a, b), c in arcs.items() if is_marker(b, SUBJOURNAL_MARKERS) and not is_marker(a, SUBJOURNAL_MARKERS))
    # The timer tick runs once a second whatever the load, so its share of
    # an alert depends on the run's speed (under valgrind ~50x too much):
    # its own bucket. All but a trace of it is SQLite stepping its query.
    tick = sum(c for (a, b), c in arcs.items() if b.endswith("WriterState>::tick") and a != b)
    ticks = sum(n for (a, b), n in calls.items() if b.endswith("WriterState>::tick") and a != b)
    if kind == "store-writer":
        for amount, to in ((commit, "commit"), (prepare, "sqlprep"), (tick, "tick"), (subjournal, "subjournal")):
            moved = min(amount, out["sql"])
            out["sql"] -= moved
            out[to] += moved
    # Exact figures to check the attribution by: all of SQLite entered from outside it.
    sqlite_exact = sum(c for (a, b), c in arcs.items() if is_sql.get(b) and not is_sql.get(a))
    steps = sum(n for (a, b), n in calls.items() if b == "sqlite3_step" and not is_sql.get(a))
    prepares = sum(n for (a, b), n in calls.items() if b == "sqlite3Prepare")
    callgrind_buckets.top = top
    return kind, total, out, {"sqlite_inclusive": sqlite_exact, "commit_inclusive": commit,
                              "prepare_inclusive": prepare, "tick_inclusive": tick, "ticks": ticks, "sqlite3_step_calls": steps,
                              "sqlite3Prepare_calls": prepares}


def cmd_callgrind(args):
    per_kind = collections.defaultdict(collections.Counter)
    totals = collections.Counter()
    extra = collections.defaultdict(collections.Counter)
    threads = collections.Counter()
    tops = collections.defaultdict(collections.Counter)
    for path in args.files:
        kind, total, out, ex = callgrind_buckets(path)
        if total == 0:
            continue
        threads[kind] += 1
        per_kind[kind].update(out)
        for b, fs in callgrind_buckets.top.items():
            tops[(kind, b)].update(fs)
        totals[kind] += total
        extra[kind].update(ex)
    n = float(args.alerts)
    grand = sum(totals.values())
    print(f"callgrind: {grand:,} instructions over {args.alerts:,} alerts = {grand / n:,.0f} Ir/alert")
    print(f"{'thread':<17} {'bucket':<12} {'Ir/alert':>10} {'share':>7}")
    for kind in sorted(per_kind, key=lambda k: -totals[k]):
        print(f"{kind:<17} {'(all)':<12} {totals[kind] / n:>10,.0f} {totals[kind] / grand:>7.1%}"
              f"   ({threads[kind]} thread{'s' if threads[kind] > 1 else ''})")
        for b in BUCKET_NAMES:
            v = per_kind[kind].get(b, 0)
            if v / n >= 0.5:
                print(f"{'':<17} {b:<12} {v / n:>10,.0f} {v / grand:>7.1%}")
                for f, c in tops[(kind, b)].most_common(args.top):
                    print(f"{'':<31} {c / n:>8,.0f}  {f[:110]}")
    print("\nall threads:")
    allb = collections.Counter()
    for c in per_kind.values():
        allb.update(c)
    per_alert = grand - allb.get("tick", 0)
    print(f"  {per_alert / n:>10,.0f} Ir/alert without the timer tick; of them:")
    for b, label in BUCKETS:
        if allb.get(b, 0) / n >= 0.5:
            share = f"{allb[b] / per_alert:>6.1%}" if b != "tick" else "      "
            print(f"  {allb[b] / n:>10,.0f} Ir/alert {share}  {label}")
    w = extra.get("store-writer")
    if w:
        print(f"\nstore-writer exact: SQLite entered from outside {w['sqlite_inclusive'] / n:,.0f} Ir/alert, "
              f"of it below the commit phases {w['commit_inclusive'] / n:,.0f}, "
              f"in sqlite3_prepare {w['prepare_inclusive'] / n:,.0f}; "
              f"sqlite3_step calls {w['sqlite3_step_calls'] / n:.2f}/alert, "
              f"SQL parsed (sqlite3Prepare) {w['sqlite3Prepare_calls'] / n:.2f}/alert; "
              f"timer ticks: {w['ticks']:.0f}, {w['tick_inclusive'] / max(1, w['ticks']):,.0f} Ir each")


# --------------------------------------------------------------------- perf

def thread_of_comm(comm):
    if comm.startswith("store-writer"):
        return "store-writer"
    if comm.startswith("store-checkpoi"):
        return "store-checkpoint"
    if comm.startswith("tokio-runtime-w") or comm.startswith("tokio-rt-worker"):
        return "tokio-worker"
    return "other-thread"


def parse_perf_script(stream):
    """Yields (comm, tid, period, frames) with frames leaf first: (sym, dso)."""
    head = None
    frames = []
    for line in stream:
        if not line.strip():
            if head is not None:
                yield head + (frames,)
            head, frames = None, []
            continue
        if not line[0].isspace():
            if head is not None:
                yield head + (frames,)
            frames = []
            m = re.match(r"^(.*?)\s+(\d+)(?:/(\d+))?\s+(?:\[\d+\]\s+)?(?:[\d.]+:\s+)?(\d+)?", line)
            comm = m.group(1) if m else line.split()[0]
            tid = m.group(3) or m.group(2) if m else "0"
            head = (comm, tid, 1)
            continue
        m = re.match(r"^\s+([0-9a-f]+)\s+(.*)\s+\((.*)\)\s*$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2).strip())
            frames.append((sym, m.group(3)))
    if head is not None:
        yield head + (frames,)


def perf_bucket(kind, frames):
    """The bucket of one perf sample: its nearest frame that has one."""
    b = None
    for sym, dso in frames:
        if "kernel" in dso or dso.startswith("[k") or dso == "[unknown]":
            continue
        is_sql = ("alertgate" in dso and "::" not in sym and not sym.startswith(("_", "<", "rust"))
                  and not NEUTRAL_C.match(sym))
        b = classify(sym, is_sql, kind)
        if b is not None:
            break
    if b is None:
        return "other"
    if kind == "store-writer" and any(s.endswith("WriterState>::tick") for s, _ in frames):
        return "tick"
    if b == "sql":
        for markers, name in ((COMMIT_MARKERS, "commit"), (PREPARE_MARKERS, "sqlprep"),
                              (SUBJOURNAL_MARKERS, "subjournal")):
            if any(is_marker(s, markers) for s, _ in frames):
                return name
    return b


def cmd_perf(args):
    stream = sys.stdin if args.files == ["-"] else open(args.files[0], errors="replace")
    per = collections.defaultdict(collections.Counter)
    kern = collections.defaultdict(collections.Counter)
    total = 0
    for comm, tid, period, frames in parse_perf_script(stream):
        kind = thread_of_comm(comm)
        total += period
        in_kernel = bool(frames) and ("kernel" in frames[0][1] or frames[0][1].startswith("[k"))
        b = perf_bucket(kind, frames)
        per[kind][b] += period
        if in_kernel:
            kern[kind][b] += period
    print(f"perf: {total} samples; share of all samples, and of them in the kernel"
          + (f"; us/alert = share x {args.cpu_us:.2f} us CPU/alert" if args.cpu_us else ""))
    hdr = f"{'thread':<17} {'bucket':<12} {'share':>7} {'kernel':>7}"
    if args.cpu_us:
        hdr += f" {'us/alert':>9}"
    print(hdr)
    for kind in sorted(per, key=lambda k: -sum(per[k].values())):
        t = sum(per[kind].values())
        line = f"{kind:<17} {'(all)':<12} {t / total:>7.1%} {sum(kern[kind].values()) / total:>7.1%}"
        if args.cpu_us:
            line += f" {args.cpu_us * t / total:>9.2f}"
        print(line)
        for b in BUCKET_NAMES:
            v = per[kind].get(b, 0)
            if v:
                line = f"{'':<17} {b:<12} {v / total:>7.1%} {kern[kind].get(b, 0) / total:>7.1%}"
                if args.cpu_us:
                    line += f" {args.cpu_us * v / total:>9.2f}"
                print(line)
    allb = collections.Counter()
    for c in per.values():
        allb.update(c)
    print("\nall threads:")
    for b, label in BUCKETS:
        if allb.get(b):
            extra = f" {args.cpu_us * allb[b] / total:6.2f} us/alert" if args.cpu_us else ""
            print(f"  {allb[b] / total:>6.1%}{extra}  {label}")


# ------------------------------------------------------------------ threads

def read_threads(path):
    out = {}
    for line in open(path):
        parts = line.split()
        if len(parts) >= 5:
            out[parts[0]] = (parts[1], int(parts[2]), int(parts[3]))
    return out


def read_metrics(path):
    out = {}
    for line in open(path):
        name, _, value = line.rpartition(" ")
        out[name.strip()] = float(value)
    return out


def cmd_threads(args):
    """CPU per thread (schedstat) and the store's commit metrics between two snapshots."""
    d = args.files[0]
    before, after = read_threads(f"{d}/threads.before"), read_threads(f"{d}/threads.after")
    wall = float(open(f"{d}/time.after").read()) - float(open(f"{d}/time.before").read())
    n = float(args.alerts)
    kinds = collections.defaultdict(lambda: [0, 0, 0])
    for tid, (comm, cpu, wait) in after.items():
        _, cpu0, wait0 = before.get(tid, (comm, 0, 0))
        k = kinds[thread_of_comm(comm.replace("_", " "))]
        k[0] += cpu - cpu0
        k[1] += wait - wait0
        k[2] += 1 if cpu - cpu0 > 0 else 0
    total = sum(k[0] for k in kinds.values())
    print(f"threads over {wall:.2f} s wall ({args.alerts:,} alerts): on-CPU time from /proc/PID/task/*/schedstat")
    print(f"{'thread':<17} {'CPU s':>7} {'us/alert':>9} {'cores':>6} {'runqueue s':>10}")
    for kind, (cpu, wait, nt) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        if cpu <= 0:
            continue
        print(f"{kind:<17} {cpu / 1e9:>7.2f} {cpu / 1e3 / n:>9.2f} {cpu / 1e9 / wall:>6.2f} {wait / 1e9:>10.2f}"
              f"   ({nt} thread{'s' if nt > 1 else ''} ran)")
    print(f"{'all':<17} {total / 1e9:>7.2f} {total / 1e3 / n:>9.2f} {total / 1e9 / wall:>6.2f}")
    try:
        m0, m1 = read_metrics(f"{d}/metrics.before"), read_metrics(f"{d}/metrics.after")
    except OSError:
        return
    dm = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
    commits = dm.get("alertgate_store_commit_duration_seconds_count", 0)
    busy = dm.get("alertgate_store_commit_duration_seconds_sum", 0)
    reqs = dm.get("alertgate_store_commit_batch_requests_sum", 0)
    if commits:
        print(f"store: {commits:.0f} transactions ({reqs / commits:.1f} requests, {n / commits:.0f} alerts each); "
              f"apply+commit {busy * 1e6 / n:.2f} us/alert wall, the writer in it {busy / wall:.0%} of the time "
              f"(alertgate_store_commit_duration_seconds)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["callgrind", "perf", "threads"])
    p.add_argument("--alerts", type=int, default=0, help="alerts the profiled interval accepted")
    p.add_argument("--cpu-us", type=float, default=0.0, help="(perf) measured server CPU us per alert")
    p.add_argument("--top", type=int, default=0, help="(callgrind) list the N costliest functions of each bucket")
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    if args.mode == "threads":
        cmd_threads(args)
    elif args.mode == "callgrind":
        if not args.alerts:
            p.error("--alerts is required for callgrind")
        cmd_callgrind(args)
    else:
        cmd_perf(args)


if __name__ == "__main__":
    main()
