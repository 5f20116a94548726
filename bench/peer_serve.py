"""The request loop shared by the bench peers (bench/peer.py, bench/peer_step.py): one JSON
request per line on stdin, one JSON reply per line on stdout. {"op": "hello"} answers `hello()`;
an op in `ops` answers its result; an error is reported in the reply and the loop keeps serving.
Defines no OPS of its own.
"""
import json
import sys


def serve(ops, hello=dict):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "hello":
                reply = {"ok": True, **hello()}
            elif op in ops:
                reply = {"ok": True, **ops[op](req)}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as e:  # report, keep serving
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
