"""Schemathesis hooks for server/tests/schemathesis.rs.

An enrolment or a check-in carries `inventory_hash`, the SHA-256 of the
canonical JSON of `inventory` (keys sorted, compact: nird_proto::hash). JSON
Schema cannot state that relation, so for generated bodies that carry an
inventory object this hook makes the pair consistent, as a real agent does:
numbers become integers within 64 bits (the canonical encoding of floats is
Rust's, not Python's), then the hash is recomputed. Everything else the
generator produced is left as it is.
"""

import hashlib
import json
import sys

import schemathesis

# The inventory is any JSON object, so generated values nest deeply; with
# Python's default limit, Hypothesis' recursive strategies occasionally hit
# a RecursionError inside CPython 3.11's AST code ("AST constructor
# recursion depth mismatch") instead of generating a case.
sys.setrecursionlimit(20_000)

I64_MIN, U64_MAX = -(2**63), 2**64 - 1


def _integers(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return 0
        value = int(value)
    if isinstance(value, int):
        return max(I64_MIN, min(U64_MAX, value))
    if isinstance(value, list):
        return [_integers(v) for v in value]
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    return value


def canonical_hash(value):
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _consistent(body):
    if (
        isinstance(body, dict)
        and isinstance(body.get("inventory"), dict)
        and isinstance(body.get("inventory_hash"), str)
        and len(body["inventory_hash"]) == 64
    ):
        body["inventory"] = _integers(body["inventory"])
        body["inventory_hash"] = canonical_hash(body["inventory"])
    return body


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # Runs for every phase (coverage cases are not built by Hypothesis).
    case.body = _consistent(case.body)
