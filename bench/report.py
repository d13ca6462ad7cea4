"""Turning rounds into numbers: medians, paired overheads and ratios, targets with PASS/MISS,
a text table, a JSON file and a hand-written SVG chart."""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.runner import Case, median, paired_diff, paired_ratio, quartiles

# (id, what, numerator, denominator, op, limit). A term is ("overhead", case) -- paired
# per-round difference from the case's baseline -- or ("time", case), its own time.
TARGETS: list[tuple[str, str, tuple[str, str], tuple[str, str], str, float]] = [
    ("repeated", "repeated valid token: overhead / one jwt.decode",
     ("overhead", "mw_repeat"), ("time", "jwt_decode"), "<=", 1 / 30),
    ("first_seen", "first-seen valid token: overhead / one jwt.decode",
     ("overhead", "mw_first"), ("time", "jwt_decode"), "<=", 0.85),
    ("unprotected", "unprotected path: overhead / one jwt.decode",
     ("overhead", "mw_unprotected"), ("time", "jwt_decode"), "<=", 0.01),
    ("missing_token", "missing-token 401: overhead / one jwt.decode",
     ("overhead", "mw_missing"), ("time", "jwt_decode"), "<=", 0.02),
    ("vs_fje_first_seen", "Flask-JWT-Extended overhead / jwt_wsgi overhead, first-seen (Flask)",
     ("overhead", "flask_fje_first"), ("overhead", "flask_mw_first"), ">=", 4.0),
    ("vs_fje_repeated", "Flask-JWT-Extended overhead / jwt_wsgi overhead, repeated (Flask)",
     ("overhead", "flask_fje_repeat"), ("overhead", "flask_mw_repeat"), ">=", 100.0),
]

# Context the issue quotes; no target.
INFO: list[tuple[str, str, tuple[str, str], tuple[str, str]]] = [
    ("decode_vs_bare", "one jwt.decode / one bare WSGI request (issue: ~170x)",
     ("time", "jwt_decode"), ("time", "bare")),
    ("fje_vs_flask", "Flask-JWT-Extended overhead / bare Flask request (issue: ~4.4x)",
     ("overhead", "flask_fje_repeat"), ("time", "flask_bare")),
    ("article_vs_decode", "article decorator overhead / one jwt.decode",
     ("overhead", "flask_article"), ("time", "jwt_decode")),
    ("bad_signature_vs_decode", "bad-signature 401: overhead / one jwt.decode",
     ("overhead", "mw_bad_signature"), ("time", "jwt_decode")),
    ("flask_mw_vs_wsgi_mw", "jwt_wsgi overhead around Flask / around bare WSGI, first-seen",
     ("overhead", "flask_mw_first"), ("overhead", "mw_first")),
]

ALGORITHM_ROWS = [("HS256", "mw_first", "mw_repeat", "jwt_decode"),
                  *((alg, f"{alg.lower()}_first", f"{alg.lower()}_repeat", f"{alg.lower()}_decode")
                    for alg in ("RS256", "ES256", "EdDSA"))]
STORE_ROWS = [("memory", "mw_repeat"), ("sqlite", "store_sqlite"), ("redis", "store_redis")]

CHART_ROWS = [
    ("mw_repeat", "jwt_wsgi, repeated token (WSGI)", "jwt_wsgi"),
    ("mw_first", "jwt_wsgi, first-seen token (WSGI)", "jwt_wsgi"),
    ("flask_mw_repeat", "jwt_wsgi around Flask, repeated", "jwt_wsgi"),
    ("flask_mw_first", "jwt_wsgi around Flask, first-seen", "jwt_wsgi"),
    ("flask_article", "article decorator (Flask)", "alternative"),
    ("flask_fje_repeat", "Flask-JWT-Extended, repeated", "alternative"),
    ("flask_fje_first", "Flask-JWT-Extended, first-seen", "alternative"),
    ("jwt_decode", "one plain jwt.decode (reference)", "reference"),
]


def _check(value: float | None, op: str, limit: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    ok = value <= limit if op == "<=" else value >= limit
    return "PASS" if ok else "MISS"


class _Series:
    def __init__(self, cases: Sequence[Case]) -> None:
        self.by_id = {c.id: c for c in cases}

    def time(self, case_id: str) -> list[float] | None:
        case = self.by_id.get(case_id)
        return list(case.samples_us) if case is not None and case.ok else None

    def overhead(self, case_id: str) -> list[float] | None:
        case = self.by_id.get(case_id)
        if case is None or not case.ok or case.baseline is None:
            return None
        base = self.time(case.baseline)
        return None if base is None else paired_diff(case.samples_us, base)

    def term(self, term: tuple[str, str]) -> list[float] | None:
        kind, case_id = term
        return self.time(case_id) if kind == "time" else self.overhead(case_id)

    def ratio(self, num: tuple[str, str], den: tuple[str, str]) -> float | None:
        a, b = self.term(num), self.term(den)
        if a is None or b is None:
            return None
        return median(paired_ratio(a, b))

    def ratio_of(self, a: list[float] | None, b: list[float] | None) -> float | None:
        if a is None or b is None:
            return None
        return median(paired_ratio(a, b))


def summarise(cases: Sequence[Case], *, rounds: int, batch_ms: float, quick: bool, machine: dict[str, Any],
              started: float, duration: float, argv: list[str]) -> dict[str, Any]:
    s = _Series(cases)
    out_cases: dict[str, Any] = {}
    for case in cases:
        entry: dict[str, Any] = {"group": case.group, "label": case.label, "baseline": case.baseline}
        if case.ok:
            q1, q3 = quartiles(case.samples_us)
            ovh = s.overhead(case.id)
            entry.update(
                calls_per_round=case.n,
                median_us=case.median_us,
                iqr_us=[q1, q3],
                samples_us=case.samples_us,
                overhead_us=median(ovh) if ovh is not None else None,
                overhead_samples_us=ovh,
                overhead_per_decode=s.ratio_of(ovh, s.time("jwt_decode")) if ovh is not None else None,
            )
        else:
            entry["error"] = case.error or "not run"
        out_cases[case.id] = entry

    targets = []
    for tid, what, num, den, op, limit in TARGETS:
        value = s.ratio(num, den)
        targets.append({"id": tid, "what": what, "value": value, "op": op, "limit": limit,
                        "result": _check(value, op, limit)})
    info = [{"id": iid, "what": what, "value": s.ratio(num, den)} for iid, what, num, den in INFO]

    algorithms = []
    for alg, first, repeat, decode in ALGORITHM_ROWS:
        dec = s.time(decode)
        f_ovh, r_ovh = s.overhead(first), s.overhead(repeat)
        f_ratio, r_ratio = s.ratio_of(f_ovh, dec), s.ratio_of(r_ovh, dec)
        algorithms.append({
            "algorithm": alg,
            "decode_us": median(dec) if dec else None,
            "first_us": median(s.time(first) or [math.nan]) if s.time(first) else None,
            "first_overhead_us": median(f_ovh) if f_ovh else None,
            "repeat_us": median(s.time(repeat) or [math.nan]) if s.time(repeat) else None,
            "repeat_overhead_us": median(r_ovh) if r_ovh else None,
            "first_per_decode": f_ratio, "first_result": _check(f_ratio, "<=", 0.85),
            "repeat_per_decode": r_ratio, "repeat_result": _check(r_ratio, "<=", 1 / 30),
            "error": next((s.by_id[c].error for c in (first, repeat, decode)
                           if c in s.by_id and s.by_id[c].error), None),
        })

    stores = []
    memory = s.time("mw_repeat")
    ping = s.time("redis_ping")
    for name, case_id in STORE_ROWS:
        t = s.time(case_id)
        found = s.by_id.get(case_id)
        if t is None or memory is None:
            stores.append({"store": name, "error": (found.error if found is not None else None) or "not run"})
            continue
        extra = paired_diff(t, memory)
        row: dict[str, Any] = {
            "store": name,
            "request_us": median(t),
            "check_extra_us": median(extra),
            "request_per_memory_request": median(paired_ratio(t, memory)),
            "extra_per_memory_request": median(paired_ratio(extra, memory)),
        }
        if name == "redis" and ping is not None:
            row["extra_per_redis_ping"] = median(paired_ratio(extra, ping))
            row["redis_ping_us"] = median(ping)
        stores.append(row)

    return {
        "schema": 1,
        "kind": "bench",
        "argv": argv,
        "quick": quick,
        "rounds": rounds,
        "batch_ms": batch_ms,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(duration, 1),
        "machine": machine,
        "cases": out_cases,
        "targets": targets,
        "info": info,
        "algorithms": algorithms,
        "stores": stores,
    }


# -- text -----------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    if 0 < abs(value) < 1:
        return f"{value:.4f} (1/{1 / value:.0f})" if value > 0 else f"{value:.4f}"
    return f"{value:.2f}"


def _limit(op: str, limit: float) -> str:
    if limit < 1:
        return f"{op} {limit:.4f} (1/{1 / limit:.0f})" if abs(1 / limit - round(1 / limit)) < 1e-9 else f"{op} {limit}"
    return f"{op} {limit:g}"


def machine_line(m: dict[str, Any]) -> str:
    v = m.get("versions", {})
    load = "/".join(f"{x:.2f}" for x in m.get("loadavg", []))
    dirty = " (jwt_wsgi modified)" if m.get("jwt_wsgi_modified") else ""
    return (f"{m.get('cpu')} x{m.get('cpus')}, Python {m.get('python')}, PyJWT {v.get('PyJWT')}, "
            f"Flask {v.get('Flask')}, Flask-JWT-Extended {v.get('Flask-JWT-Extended')}, "
            f"commit {m.get('commit')}{dirty}, load {load}")


def render_text(r: dict[str, Any]) -> str:
    lines = []
    mode = "QUICK (smoke run; not for reporting)" if r["quick"] else "full"
    lines.append(f"jwt_wsgi bench -- {mode}: {r['rounds']} paired rotating rounds, batch ~{r['batch_ms']:g} ms, "
                 f"medians; {r['duration_s']} s")
    lines.append(f"machine: {machine_line(r['machine'])}")
    lines.append("")
    head = f"{'case':<52} {'µs/req':>9} {'±%':>5} {'overhead µs':>12} {'ovh/decode':>11}"
    lines.append(head)
    lines.append("-" * len(head))
    group = None
    for cid, c in r["cases"].items():
        if c["group"] != group:
            group = c["group"]
            lines.append(f"[{group}]")
        label = f"{c['label']}"
        if "error" in c:
            lines.append(f"  {label:<50} {c['error']}")
            continue
        med = c["median_us"]
        q1, q3 = c["iqr_us"]
        spread = (q3 - q1) / 2 / med * 100 if med else 0.0
        ovh = _num(c["overhead_us"]) if c["overhead_us"] is not None else "-"
        per = _num(c["overhead_per_decode"], 4) if c["overhead_per_decode"] is not None else "-"
        lines.append(f"  {label:<50} {med:>9.2f} {spread:>4.0f}% {ovh:>12} {per:>11}   {cid}")
    lines.append("")
    lines.append("targets (issue 7; medians of per-round ratios)")
    for t in r["targets"]:
        lines.append(f"  {t['result']:<5} {t['what']:<72} {_ratio(t['value']):>18}  {_limit(t['op'], t['limit'])}")
    lines.append("")
    lines.append("context")
    for i in r["info"]:
        lines.append(f"        {i['what']:<72} {_ratio(i['value']):>18}")
    lines.append("")
    lines.append("algorithms (overhead over the bare WSGI app / one plain jwt.decode of that algorithm)")
    lines.append(f"  {'alg':<6} {'decode µs':>10} {'first µs':>9} {'ovh/dec':>8} {'':<5} "
                 f"{'repeat µs':>10} {'ovh/dec':>8}")
    for a in r["algorithms"]:
        if a["decode_us"] is None and a["first_us"] is None:
            lines.append(f"  {a['algorithm']:<6} {a.get('error') or 'n/a'}")
            continue
        lines.append(
            f"  {a['algorithm']:<6} {_num(a['decode_us']):>10} {_num(a['first_us']):>9} "
            f"{_num(a['first_per_decode'], 3):>8} {a['first_result']:<5} {_num(a['repeat_us']):>10} "
            f"{_num(a['repeat_per_decode'], 3):>8} {a['repeat_result']}"
        )
    lines.append("    (first-seen target <= 0.85, repeated <= 1/30 = 0.033; HS256 is the headline row)")
    lines.append("")
    lines.append("stores: revocation check on a repeated token (issue 3 item 7), paired against memory://")
    lines.append(f"  {'store':<8} {'µs/req':>8} {'check extra µs':>15} {'request / memory request':>25} "
                 f"{'extra / memory request':>23}")
    for st in r["stores"]:
        if "error" in st:
            lines.append(f"  {st['store']:<8} {st['error']}")
            continue
        extra = "0 (reference)" if st["store"] == "memory" else _num(st["check_extra_us"])
        line = (f"  {st['store']:<8} {st['request_us']:>8.2f} {extra:>15} "
                f"{_num(st['request_per_memory_request'], 3):>25} {_num(st['extra_per_memory_request'], 3):>23}")
        if "extra_per_redis_ping" in st:
            line += f"   = {st['extra_per_redis_ping']:.2f} x one redis-py PING ({st['redis_ping_us']:.1f} µs)"
        lines.append(line)
    passed = sum(t["result"] == "PASS" for t in r["targets"])
    lines.append("")
    lines.append(f"{passed}/{len(r['targets'])} targets PASS")
    return "\n".join(lines)


def write_json(r: dict[str, Any], path: Path) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(r), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- chart ----------------------------------------------------------------------------------
_COLOURS = {"jwt_wsgi": "#1f6fb2", "alternative": "#d9822b", "reference": "#8c8c8c"}


def _nice_step(maximum: float) -> float:
    raw = maximum / 5 if maximum > 0 else 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if mult * power >= raw:
            return mult * power
    return 10 * power


def render_svg(r: dict[str, Any]) -> str:
    """Horizontal bars: overhead per request (µs) over the relevant bare app."""
    rows = []
    for cid, label, kind in CHART_ROWS:
        c = r["cases"].get(cid)
        if c is None or "error" in c:
            continue
        value = c["median_us"] if kind == "reference" else c["overhead_us"]
        if value is None:
            continue
        rows.append((label, kind, float(value)))
    width, left, right, top, row_h = 820, 270, 110, 78, 28
    plot_w = width - left - right
    height = top + row_h * max(len(rows), 1) + 70
    maximum = max([v for _, _, v in rows] + [1.0])
    step = _nice_step(maximum)
    axis_max = step * math.ceil(maximum / step)
    m = r["machine"]
    v = m.get("versions", {})
    subtitle = (f"median of {r['rounds']} paired rounds, one process; {m.get('cpu')} x{m.get('cpus')}, "
                f"Python {m.get('python')}, PyJWT {v.get('PyJWT')}; {r['started'][:10]}"
                f"{' (quick run)' if r['quick'] else ''}")
    e = html.escape
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="16" y="28" font-size="17" font-weight="bold">'
        'Authentication overhead per request (microseconds over the bare app; shorter is better)</text>',
        f'<text x="16" y="50" font-size="12" fill="#555">{e(subtitle)}</text>',
    ]
    ticks = int(round(axis_max / step))
    for i in range(ticks + 1):
        x = left + plot_w * i / ticks
        out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{top + row_h * len(rows)}" '
                   f'stroke="#e3e3e3"/>')
        out.append(f'<text x="{x:.1f}" y="{top - 12}" text-anchor="middle" font-size="11" fill="#666">'
                   f'{step * i:g}</text>')
    for i, (label, kind, value) in enumerate(rows):
        y = top + i * row_h
        w = max(0.0, value) / axis_max * plot_w
        out.append(f'<text x="{left - 8}" y="{y + 18}" text-anchor="end">{e(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 5}" width="{max(w, 1.0):.1f}" height="{row_h - 10}" '
                   f'fill="{_COLOURS[kind]}"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 18}" font-size="12">{value:.1f} µs</text>')
    y = top + row_h * len(rows) + 30
    x = left
    for kind, name in (("jwt_wsgi", "jwt_wsgi"), ("alternative", "alternatives"),
                       ("reference", "plain jwt.decode (whole call)")):
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{_COLOURS[kind]}"/>')
        out.append(f'<text x="{x + 18}" y="{y}" font-size="12">{e(name)}</text>')
        x += 40 + 8 * len(name)
    out.append(f'<text x="16" y="{y + 24}" font-size="11" fill="#666">'
               'Generated by python -m bench (bench/results/overhead.svg). WSGI rows: over a bare WSGI app; '
               'Flask rows: over the same bare Flask app.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
