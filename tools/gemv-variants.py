#!/usr/bin/env python3
"""Writes variants of a built-in kernel path whose GEMV steps (matmul, ffn_gate_up, lm_head) and norms use
other workgroup shapes, for measuring them with `doppler-gl bench --kernel-path FILE`.
Usage: tools/gemv-variants.py BASE_PATH_ID OUT_DIR WG:ROWS_PER_WG[:RPT[:NORM_WG]] ...
(RPT: rows each thread applies one x segment to; NORM_WG: the norms' workgroup size)."""
import json, os, sys

base, out = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
src = json.load(open(os.path.join(here, "..", "kernel-paths", base + ".json")))
os.makedirs(out, exist_ok=True)
for spec in sys.argv[3:]:
    parts = spec.split(":")
    wg, rows = parts[0], parts[1]
    rpt = parts[2] if len(parts) > 2 and parts[2] else "1"
    nwg = parts[3] if len(parts) > 3 else None
    p = json.loads(json.dumps(src))
    p["id"] = f"{base}-wg{wg}r{rows}t{rpt}" + (f"n{nwg}" if nwg else "")
    p.pop("fallback", None)
    for sec in ("preLayer", "postLayer"):
        for s in p.get(sec, []):
            if s["kernel"] == "matmul":
                s.setdefault("constants", {}).update({"WG_SIZE": wg, "ROWS_PER_WG": rows, "RPT": rpt})
            if nwg and s["kernel"] == "rmsnorm":
                s.setdefault("constants", {})["WG_SIZE"] = nwg
    for s in p["decode"]["steps"]:
        if s["kernel"] in ("matmul", "ffn_gate_up"):
            s.setdefault("constants", {}).update({"WG_SIZE": wg, "ROWS_PER_WG": rows, "RPT": rpt})
        if nwg and s["kernel"] == "rmsnorm":
            s.setdefault("constants", {})["WG_SIZE"] = nwg
    fn = os.path.join(out, p["id"] + ".json")
    json.dump(p, open(fn, "w"), indent=1)
    print(fn)
