#!/usr/bin/env python3
"""Helpers for scripts/bench: timing loops, concurrent fills, emulator calls, trace parsing and
the final Markdown table. Results are kept as one JSON object in $BENCH_RESULTS.

Usage: bench.py SUBCOMMAND ARGS...  (see the functions named cmd_*)."""

import json
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


# --------------------------------------------------------------------------------------------
# results file


def _results_path():
    return os.environ["BENCH_RESULTS"]


def load_results():
    try:
        with open(_results_path()) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def record(key, value):
    r = load_results()
    r[key] = value
    tmp = _results_path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(r, f, indent=1, sort_keys=True)
    os.replace(tmp, _results_path())


def cmd_record(key, value):
    """record KEY VALUE: store a string (numbers are parsed)."""
    try:
        v = json.loads(value)
    except ValueError:
        v = value
    record(key, v)


def cmd_record_str(key, value):
    """record_str KEY VALUE: store a string as it is."""
    record(key, value)


def cmd_get(key, default=""):
    """get KEY [DEFAULT]: print a stored value."""
    v = load_results().get(key, default)
    print(v if not isinstance(v, (dict, list)) else json.dumps(v))


# --------------------------------------------------------------------------------------------
# small statistics


def pct(xs, p):
    """Percentile with linear interpolation (p in 0..100)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(times_s):
    ms = [t * 1000.0 for t in times_s]
    return {
        "median": statistics.median(ms),
        "mean": statistics.fmean(ms),
        "stddev": statistics.stdev(ms) if len(ms) > 1 else 0.0,
        "min": min(ms),
        "max": max(ms),
        "p95": pct(ms, 95),
        "runs": len(ms),
    }


# --------------------------------------------------------------------------------------------
# emulator control


def http(method, url, body=None):
    data = None if body is None else body.encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def cmd_http(method, url, body=None):
    """http METHOD URL [JSON]: one request to the emulator, body printed."""
    out = http(method, url, body)
    if out:
        print(out)


def stats(url):
    return json.loads(http("GET", url + "/_emulator/stats"))


def clear(url):
    http("POST", url + "/_emulator/clear")


def cmd_count(url, key, expected, *argv):
    """count URL KEY EXPECTED CMD...: clear the emulator's log, run CMD, record its stats."""
    clear(url)
    subprocess.run(list(argv), check=True, stdout=subprocess.DEVNULL)
    s = stats(url)
    s["expected"] = int(expected)
    record(key, s)
    print(
        f"  requests {s['requests']} (mints {s['mints']}, lookups {s['lookups']})"
        f"   expected {expected}"
    )


# --------------------------------------------------------------------------------------------
# git credential fill


def fill(input_path, env=None):
    """One `git credential fill`; returns (seconds, password or None, stderr)."""
    with open(input_path, "rb") as stdin:
        t0 = time.perf_counter()
        p = subprocess.run(
            ["git", "credential", "fill"],
            stdin=stdin,
            capture_output=True,
            env=env,
        )
        dt = time.perf_counter() - t0
    password = None
    if p.returncode == 0:
        for line in p.stdout.decode(errors="replace").splitlines():
            if line.startswith("password="):
                password = line[len("password="):]
    return dt, password, p.stderr.decode(errors="replace")


def cmd_timeloop(out_json, runs, warmup, *pairs):
    """timeloop OUT.json RUNS WARMUP NAME=INPUT...: the fallback when hyperfine is missing.
    Writes hyperfine's JSON shape (results[].command, .times)."""
    runs, warmup = int(runs), int(warmup)
    results = []
    for pair in pairs:
        name, input_path = pair.split("=", 1)
        for _ in range(warmup):
            fill(input_path)
        times = []
        for _ in range(runs):
            dt, pw, err = fill(input_path)
            if pw is None:
                sys.exit(f"{name}: git credential fill gave no password: {err.strip()}")
            times.append(dt)
        s = summary(times)
        print(
            f"  {name:<28} {s['mean']:7.2f} ms ± {s['stddev']:5.2f} ms"
            f"   median {s['median']:7.2f}   min {s['min']:7.2f}   max {s['max']:7.2f}   ({runs} runs)"
        )
        results.append({"command": name, "times": times})
    with open(out_json, "w") as f:
        json.dump({"results": results}, f)


def cmd_summarize(json_path, prefix, *names):
    """summarize HYPERFINE.json PREFIX NAME...: record median/mean/σ/min/p95 per command (ms)."""
    with open(json_path) as f:
        data = json.load(f)
    for name, res in zip(names, data["results"]):
        s = summary(res["times"])
        record(f"{prefix}.{name}", s)


def cmd_ratio(a, b, key):
    """ratio KEY_A KEY_B OUT: median(a)/median(b), and mean ratio, recorded and printed."""
    r = load_results()
    if a not in r or b not in r:
        return
    med = r[a]["median"] / r[b]["median"]
    mean = r[a]["mean"] / r[b]["mean"]
    out = {"median": med, "mean": mean}
    line = f"  {key:<34} {med:5.2f}x (medians)   {mean:5.2f}x (means)"
    if "cpu_mean" in r[a] and "cpu_mean" in r[b]:
        out["cpu"] = r[a]["cpu_mean"] / r[b]["cpu_mean"]
        line += f"   {out['cpu']:5.2f}x (CPU time)"
    record(key, out)
    print(line)


# --------------------------------------------------------------------------------------------
# interleaved runs without a shell: wall and CPU time (rusage of the child and its children)


def run_once(argv, input_path):
    """Run argv with stdin from input_path; returns (wall s, cpu s, exit status)."""
    with open(input_path, "rb") as stdin:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return dt, ru.ru_utime + ru.ru_stime, ru.ru_minflt, p.returncode


def cmd_interleave(runs, warmup, prefix, *spec):
    """interleave RUNS WARMUP PREFIX NAME INPUT ARGV... [:: NAME INPUT ARGV...]...: round-robin
    runs (so that a change of machine load hits every command alike); records PREFIX.NAME with
    wall-time statistics and the median CPU time. With BENCH_PREPARE_FOR=NAME, the shell command
    BENCH_PREPARE runs (untimed) before each run of NAME."""
    runs, warmup = int(runs), int(warmup)
    prepare_for, prepare = os.environ.get("BENCH_PREPARE_FOR"), os.environ.get("BENCH_PREPARE")
    cmds, cur = [], []
    for a in list(spec) + ["::"]:
        if a == "::":
            if cur:
                cmds.append((cur[0], cur[1], cur[2:]))
            cur = []
        else:
            cur.append(a)
    wall = {n: [] for n, _, _ in cmds}
    cpu = {n: [] for n, _, _ in cmds}
    faults = {n: [] for n, _, _ in cmds}
    for i in range(warmup + runs):
        for name, input_path, argv in cmds:
            if prepare and name == prepare_for:
                subprocess.run(prepare, shell=True, check=True, stdout=subprocess.DEVNULL)
            dt, c, flt, rc = run_once(argv, input_path)
            if rc != 0:
                sys.exit(f"{name}: exit status {rc}: {' '.join(argv)}")
            if i >= warmup:
                wall[name].append(dt)
                cpu[name].append(c)
                faults[name].append(flt)
    for name, _, _ in cmds:
        s = summary(wall[name])
        s["cpu"] = statistics.median(cpu[name]) * 1000
        s["cpu_mean"] = statistics.fmean(cpu[name]) * 1000
        s["faults"] = statistics.median(faults[name])
        record(f"{prefix}.{name}", s)
        print(
            f"  {name:<22} wall median {s['median']:6.2f} ms (mean {s['mean']:6.2f} ± {s['stddev']:5.2f},"
            f" min {s['min']:5.2f})   CPU {s['cpu_mean']:5.2f} ms   {s['faults']:.0f} page faults"
        )


def cmd_instructions(key, input_path, *argv):
    """instructions KEY INPUT ARGV...: instructions executed by ARGV and every process it starts
    (valgrind's callgrind, --trace-children), stdin from INPUT. Unlike time, the count does not
    depend on what else the machine is doing. Records KEY = {"total", "processes": [...]}."""
    with open(input_path, "rb") as stdin:
        p = subprocess.run(
            ["valgrind", "--tool=callgrind", "--trace-children=yes",
             "--callgrind-out-file=/dev/null", *argv],
            stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
    err = p.stderr.decode(errors="replace")
    counts = [int(n.replace(",", "")) for n in re.findall(r"I\s+refs:\s+([\d,]+)", err)]
    if p.returncode != 0 or not counts:
        sys.exit(f"{key}: valgrind failed (exit {p.returncode}):\n{err[-2000:]}")
    record(key, {"total": sum(counts), "processes": counts})
    per = " + ".join(f"{c / 1000:.0f} k" for c in counts)
    print(f"  {key:<28} {sum(counts) / 1000:8.0f} k instructions   ({per})")


# --------------------------------------------------------------------------------------------
# continuous use: gets in a loop, tokens that live (lifetime - margin) seconds


def cmd_continuous(url, input_path, secs, usable_secs, key):
    """continuous URL INPUT SECS USABLE KEY: fill in a loop for SECS seconds."""
    secs, usable = float(secs), float(usable_secs)
    clear(url)
    gets = fails = 0
    passwords = []
    lat = []
    start = time.monotonic()
    while time.monotonic() - start < secs:
        dt, pw, err = fill(input_path)
        gets += 1
        lat.append(dt)
        if pw is None:
            fails += 1
            if fails <= 3:
                print(f"  fill failed: {err.strip()}", file=sys.stderr)
        elif not passwords or passwords[-1] != pw:
            passwords.append(pw)
        time.sleep(0.02)
    wall = time.monotonic() - start
    s = stats(url)
    expected = math.ceil(wall / usable)
    out = {
        "secs": round(wall, 1),
        "usable_secs": usable,
        "gets": gets,
        "failures": fails,
        "tokens": len(set(passwords)),
        "mints": s["mints"],
        "lookups": s["lookups"],
        "requests": s["requests"],
        "expected_mints_max": expected,
        "median_ms": statistics.median(lat) * 1000 if lat else None,
    }
    record(key, out)
    print(
        f"  {gets} gets in {wall:.1f} s ({fails} failed): {s['mints']} mints, {s['lookups']} lookups,"
        f" {len(set(passwords))} distinct tokens; at most one mint per {usable:g} s"
        f" → expected ≤ ceil({wall:.1f}/{usable:g}) = {expected}"
    )


# --------------------------------------------------------------------------------------------
# concurrency: N fills at once on a cold cache


def cmd_burst(url, input_path, n, key):
    """burst URL INPUT N KEY: N concurrent fills (XDG_CACHE_HOME must be fresh)."""
    n = int(n)
    clear(url)
    barrier = threading.Barrier(n)
    out = [None] * n

    def worker(i):
        barrier.wait()
        out[i] = fill(input_path)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    wall0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    s = stats(url)
    lat = [o[0] * 1000 for o in out]
    pws = [o[1] for o in out if o[1]]
    fails = [o[2].strip() for o in out if not o[1]]
    res = {
        "n": n,
        "mints": s["mints"],
        "lookups": s["lookups"],
        "requests": s["requests"],
        "failures": len(fails),
        "tokens": len(set(pws)),
        "p50": pct(lat, 50),
        "p95": pct(lat, 95),
        "max": max(lat),
        "wall_ms": wall * 1000,
    }
    record(key, res)
    print(
        f"  {n:>3} processes: {s['mints']} mint(s), {s['lookups']} lookup(s), "
        f"{len(set(pws))} distinct token(s), {len(fails)} failure(s); latency per process "
        f"p50 {res['p50']:.1f} ms, p95 {res['p95']:.1f} ms, max {res['max']:.1f} ms; "
        f"all done in {res['wall_ms']:.0f} ms"
    )
    for f in fails[:3]:
        print(f"      failure: {f}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# mint latency split from the helper's trace

TRACE_PATTERNS = {
    # "signer (the key in …) ready in X ms" (older builds: "key loaded in X ms")
    "key_load": re.compile(r"(?:key loaded|signer \(.*\) ready) in ([0-9.]+) ms"),
    "jwt_sign": re.compile(r"JWT signed in ([0-9.]+) ms"),
    "lookup": re.compile(r"GET \S*/installation\S* → 200 in ([0-9.]+) ms"),
    "mint": re.compile(r"POST \S*/access_tokens → 201 in ([0-9.]+) ms"),
}


def parse_trace(path):
    found = {k: [] for k in TRACE_PATTERNS}
    with open(path, errors="replace") as f:
        for line in f:
            for k, rx in TRACE_PATTERNS.items():
                m = rx.search(line)
                if m:
                    found[k].append(float(m.group(1)))
    return found


def cmd_mintsplit(url, input_path, reps, workdir, key):
    """mintsplit URL INPUT REPS WORKDIR KEY: REPS cold fills (installation unknown, fresh cache)
    traced, then for each a reject + fill with the installation known."""
    reps = int(reps)
    clear(url)
    parts = {k: [] for k in TRACE_PATTERNS}
    cold_unknown, cold_known = [], []
    for i in range(reps):
        env = dict(os.environ)
        env["XDG_CACHE_HOME"] = os.path.join(workdir, f"cache-{i}")
        trace = os.path.join(workdir, f"trace-{i}.log")
        env["GIT_CREDENTIAL_GITHUB_APP_TRACE"] = trace
        dt, pw, err = fill(input_path, env)
        if pw is None:
            sys.exit(f"cold fill failed: {err.strip()}")
        cold_unknown.append(dt)
        for k, v in parse_trace(trace).items():
            parts[k].extend(v[:1])
        # erase the token (git credential reject with the cached password), then a cold get that
        # only mints: the installation is remembered
        with open(input_path) as f:
            req = f.read()
        subprocess.run(
            ["git", "credential", "reject"],
            input=(req + f"username=x-access-token\npassword={pw}\n").encode(),
            env=env,
            check=True,
        )
        env.pop("GIT_CREDENTIAL_GITHUB_APP_TRACE")
        dt, pw2, err = fill(input_path, env)
        if pw2 is None or pw2 == pw:
            sys.exit(f"cold fill (installation known) did not mint: {err.strip()}")
        cold_known.append(dt)
    s = stats(url)
    res = {"reps": reps, "mints": s["mints"], "lookups": s["lookups"]}
    for k, v in parts.items():
        res[k] = statistics.median(v) if v else None
    res["cold_unknown"] = statistics.median(cold_unknown) * 1000
    res["cold_known"] = statistics.median(cold_known) * 1000
    res["cold_unknown_p95"] = pct([t * 1000 for t in cold_unknown], 95)
    record(key, res)

    def f(v):
        return "n/a (no such trace line)" if v is None else f"{v:.2f} ms"

    print(f"  medians over {reps} cold fills ({s['mints']} mints, {s['lookups']} lookups in all):")
    print(f"    key load                          {f(res['key_load'])}")
    print(f"    JWT sign                          {f(res['jwt_sign'])}")
    if res["jwt_sign"] is None:
        print("      (this build traces no 'JWT signed in X ms' line; the signing time is inside the")
        print("       whole-fill figures below, not in the request times)")
    print(f"    lookup request (GET …/installation) {f(res['lookup'])}")
    print(f"    mint request (POST …/access_tokens) {f(res['mint'])}")
    print(f"    whole cold fill, installation unknown   {res['cold_unknown']:.2f} ms")
    print(f"    whole cold fill, installation known     {res['cold_known']:.2f} ms")


# --------------------------------------------------------------------------------------------
# the final table


def cmd_table():
    """table: the Markdown summary of everything recorded."""
    r = load_results()
    rows = []

    def ms(v):
        return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"

    def timing(key):
        s = r.get(key)
        if not s:
            return None
        return f"{ms(s['median'])} (mean {ms(s['mean'])} ± {s['stddev']:.2f})"

    def ratio(key):
        s = r.get(key)
        if not s:
            return None
        cpu = f" (CPU {s['cpu']:.2f}×)" if "cpu" in s else ""
        return f"{s['median']:.2f}×{cpu}"

    def add(what, value, note=""):
        if value is not None:
            rows.append((what, value, note))

    tool = r.get("timer", "hyperfine")
    add(
        "cached `get`: ours, `--cache file`",
        timing("hot.ours_file"),
        "whole `git credential fill`, median of %s runs (%s)" % (r.get("runs", "?"), tool),
    )
    add("cached `get`: ours, `--cache keyring` (kernel keyutils)", timing("hot.ours_keyutils"))
    add("cached `get`: git `credential-store`", timing("hot.store"))
    add("cached `get`: git `credential-cache` (daemon)", timing("hot.cache"))
    add("ratio ours (file) / store", ratio("ratio.file_store"), "medians, same timer")
    add("ratio ours (file) / cache", ratio("ratio.file_cache"))
    add("ratio ours (keyutils) / store", ratio("ratio.keyutils_store"))
    add("ratio ours (keyutils) / cache", ratio("ratio.keyutils_cache"))
    if "inter.ours_file" in r:
        add(
            "cross-check, interleaved, no shell: ours (file) / store, ours (file) / cache",
            f"{ratio('ratio.inter_file_store')}, {ratio('ratio.inter_file_cache')}",
            "wall-time medians (CPU = user+sys of git and its children), %s rounds" % r.get("runs", "?"),
        )
        if "ratio.inter_keyutils_store" in r:
            add(
                "cross-check, interleaved, no shell: ours (keyutils) / store, / cache",
                f"{ratio('ratio.inter_keyutils_store')}, {ratio('ratio.inter_keyutils_cache')}",
            )
    a = r.get("alone.helper_file")
    if a:
        def one(key, label):
            x = r.get(key)
            return f"{label} {ms(x['median'])} ({x['cpu_mean']:.2f} ms CPU)" if x else None

        parts = [
            one("alone.helper_file", "ours `get` (file)"),
            one("alone.helper_keyutils", "ours `get` (keyutils)"),
            one("alone.helper_version", "ours `--version`"),
            one("alone.store", "`git credential-store get`"),
            one("alone.cache", "`git credential-cache get`"),
            one("alone.exec_floor", "`true`"),
        ]
        add(
            "the helper process alone (stdin from a file, no git)",
            "; ".join(p for p in parts if p),
            "wall medians, CPU = user+sys means",
        )
    ins = {k: r.get(f"instr.{k}") for k in ("helper", "store", "fill_ours", "fill_store")}
    if all(ins.values()):
        def k(x):
            return f"{x['total'] / 1000:.0f} k"

        add(
            "instructions of one cached `get` (callgrind; independent of machine load)",
            f"helper {k(ins['helper'])}, `git credential-store get` {k(ins['store'])}; "
            f"whole fill: ours {k(ins['fill_ours'])}, store {k(ins['fill_store'])}: "
            f"**{ins['fill_ours']['total'] / ins['fill_store']['total']:.2f}×**",
            "every process of the fill (git, sh, the helper)",
        )
    sc = r.get("syscalls")
    if sc:
        add(
            "system calls of one cached `get` (strace -f -c)",
            f"helper {sc['helper']}, `git credential-store get` {sc['store']}; "
            f"whole fill: ours {sc['fill_ours']}, store {sc['fill_store']}",
        )
    if "ss.ours_ss" in r:
        add(
            "cached `get` in a desktop session: ours, `--cache keyring` (Secret Service behind the kernel keyring)",
            timing("ss.ours_ss"),
        )
        add("cached `get`: git `credential-store`, same D-Bus session", timing("ss.store"))
        add("ratio ours (Secret Service session) / store", ratio("ratio.ss_store"))
        x, y = r.get("ss_alone.ss_only"), r.get("ss_alone.store")
        if x and y:
            add(
                "Secret Service alone (kernel-keyring copy dropped before each run): whole fill, ours vs store",
                f"{ms(x['median'])} vs {ms(y['median'])}: {x['median'] / y['median']:.2f}×",
                "round-robin, no shell; the D-Bus connection and four calls cost ~1.5 ms",
            )
    elif r.get("ss.skipped"):
        add("Secret Service", "skipped", r["ss.skipped"])

    for key, label in [
        ("api.cold_unknown", "API requests: cold `get`, installation unknown"),
        ("api.cold_known", "API requests: cold `get`, installation known (after `reject`)"),
        ("api.cached", "API requests: cached `get`"),
    ]:
        s = r.get(key)
        if s:
            add(
                label,
                f"{s['requests']} ({s['mints']} mint, {s['lookups']} lookup)",
                f"expected {s['expected']}",
            )
    c = r.get("api.continuous")
    if c:
        add(
            f"continuous use: {c['gets']} gets in {c['secs']:g} s, tokens usable {c['usable_secs']:g} s",
            f"{c['mints']} mint(s), {c['lookups']} lookup(s), {c['failures']} failed",
            f"expected ≤ {c['expected_mints_max']} mint(s): one per {c['usable_secs']:g} s",
        )
    for n in (8, 32, 64):
        b = r.get(f"conc.{n}")
        if b:
            fail = f", {b['failures']} failed" if b["failures"] else ""
            add(
                f"{n} concurrent cold `get`s (installation unknown)",
                f"{b['mints']} mint, {b['lookups']} lookup{fail}; p50 {ms(b['p50'])}, p95 {ms(b['p95'])}",
                f"expected 1 mint; {b['tokens']} distinct token(s)",
            )
    m = r.get("mint")
    if m:
        def opt(v):
            return ms(v) if v is not None else "n/a"

        add(
            "cold `get` split (medians)",
            f"key load {opt(m['key_load'])}, JWT sign {opt(m['jwt_sign'])}, "
            f"lookup {opt(m['lookup'])}, mint {opt(m['mint'])}",
            f"from `GIT_CREDENTIAL_GITHUB_APP_TRACE`, {m['reps']} runs, loopback emulator",
        )
        add("cold `get`, whole `git credential fill` (installation unknown)", ms(m["cold_unknown"]))
        add("cold `get`, whole `git credential fill` (installation known)", ms(m["cold_known"]))
    if "size.bytes" in r:
        b = r["size.bytes"]
        add("release binary size", f"{b:,} bytes ({b / 1048576:.2f} MiB)", "stripped, LTO")
    if "build.secs" in r:
        add("cold release build", f"{r['build.secs']:.0f} s", f"fresh `CARGO_TARGET_DIR`, {r.get('machine.nproc', '?')} CPUs")

    print(f"Machine: {r.get('machine.summary', '?')}; load average {r.get('machine.load', '?')}")
    print()
    print("| measure | result | note |")
    print("|---|---|---|")
    for what, value, note in rows:
        print(f"| {what} | {value} | {note} |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    fn = globals().get("cmd_" + sys.argv[1])
    if fn is None:
        sys.exit(f"bench.py: unknown subcommand {sys.argv[1]}")
    fn(*sys.argv[2:])


if __name__ == "__main__":
    main()
