#!/usr/bin/env python3
"""Example external reward for `ExternalReward` (Rust: gflownet::reward::ExternalReward).

Protocol: read one JSON line per batch from stdin,
    {"sequences": ["ACDK", "WYV", ...]}
and write one JSON line back to stdout, flushed, with one reward per sequence:
    [0.31, 0.12, ...]
(An object {"rewards": [...]} is accepted too.) Anything else goes to stderr.

Score (strictly in (0, 1)):
    score(s) = (distinct(s) / len(s)) * (1 - exp(-len(s) / 10))
i.e. the fraction of distinct residues times a saturating length term;
the empty sequence scores 1e-3.

Usage:
    python3 score.py [MODE]
MODE, for testing error handling (default: "ok"):
    ok          answer correctly
    dict        answer correctly, as {"rewards": [...]}
    crash       raise an exception on the first request (traceback on stderr, exit 1)
    hang        never answer (sleeps)
    garbage     answer with a line that is not JSON
    wrongcount  answer with one reward too few
    nan         first reward NaN, written by json.dumps as a bare NaN
    nanstr      first reward the string "NaN"
    null        first reward null
    inf         first reward infinity, written by json.dumps as a bare Infinity
    negative    first reward negative
    stderr      write 1 MB to stderr per request, then answer correctly
"""

import json
import math
import sys
import time


def score(seq):
    n = len(seq)
    if n == 0:
        return 1e-3
    return (len(set(seq)) / n) * (1.0 - math.exp(-n / 10.0))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    for line in sys.stdin:
        request = json.loads(line)
        rewards = [score(s) for s in request["sequences"]]
        if mode == "crash":
            raise RuntimeError("simulated crash in score.py")
        if mode == "hang":
            time.sleep(3600)
        if mode == "stderr":
            chunk = "chatty diagnostic output " * 40 + "\n"
            for _ in range(1_000_000 // len(chunk) + 1):
                sys.stderr.write(chunk)
            sys.stderr.flush()
        if mode == "wrongcount":
            rewards = rewards[:-1]
        elif mode == "nan":
            rewards[0] = float("nan")
        elif mode == "nanstr":
            rewards[0] = "NaN"
        elif mode == "null":
            rewards[0] = None
        elif mode == "inf":
            rewards[0] = float("inf")
        elif mode == "negative":
            rewards[0] = -rewards[0]
        if mode == "garbage":
            out = "this is not JSON at all"
        elif mode == "dict":
            out = json.dumps({"rewards": rewards})
        else:
            out = json.dumps(rewards)
        sys.stdout.write(out + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
