#!/usr/bin/env python3
"""gen_events.py: writes benchmark events (JSON lines) built from tests/fixtures/events/complete.json.

Each event is the complete fixture invoice with its ids, version and targets replaced; the target
references are derived from the invoice id the same way tests/support/lib/stack.c does, so every
adapter accepts every event. Events of one invoice appear in version order; invoices interleave.
"""
import argparse
import json
import os
import random
import sys

ADAPTERS = ["centra_soap", "centra_navision", "midnight", "ebizcharge", "invoicexpress"]


def fnv(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def refs_for(invoice_id):
    """The target references stack.c's iw_make_event derives from an invoice id."""
    h = fnv(invoice_id)
    guid = "%08x-%04x-4%03x-8%03x-%012x" % (
        h >> 32, (h >> 16) & 0xFFFF, (h >> 4) & 0xFFF, h & 0xFFF,
        (h * 2654435761) & 0xFFFFFFFFFFFF)
    return {
        "number": "N%d" % (h % 1000000000),
        "invoicexpress_id": str(h % 100000000 + 1),
        "midnight_guid": guid,
        "ebiz_internal_id": "ebiz-%016x" % h,
        "centra_id": "C-" + invoice_id,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixture", required=True, help="complete.json")
    ap.add_argument("--events", type=int, required=True, help="number of events")
    ap.add_argument("--invoices", type=int, required=True, help="number of distinct invoices")
    ap.add_argument("--targets", default="mixed",
                    help="'mixed' (invoice i -> adapter i mod 5) or one adapter name")
    ap.add_argument("--prefix", default="B", help="event and invoice id prefix (unique per run)")
    ap.add_argument("--tenant", default="bench")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()

    base = json.load(open(a.fixture))
    rnd = random.Random(a.seed)
    inv_ids = ["%s-INV-%06d" % (a.prefix, i) for i in range(a.invoices)]
    per_inv = [a.events // a.invoices + (1 if i < a.events % a.invoices else 0)
               for i in range(a.invoices)]
    # rounds: version v of every invoice that has one, invoices in a shuffled order per round
    order = list(range(a.invoices))
    n = 0
    with open(a.out, "w") as f:
        for v in range(1, max(per_inv) + 1):
            rnd.shuffle(order)
            for i in order:
                if per_inv[i] < v:
                    continue
                inv_id = inv_ids[i]
                e = base.copy()
                e["event_id"] = "%s-EV-%08d" % (a.prefix, n)
                e["tenant"] = a.tenant
                e["version"] = v
                e["targets"] = [ADAPTERS[i % len(ADAPTERS)] if a.targets == "mixed" else a.targets]
                inv = dict(base["invoice"])
                r = refs_for(inv_id)
                inv["id"] = inv_id
                inv["number"] = r.pop("number")
                tr = dict(inv.get("target_refs") or {})
                tr.update(r)
                inv["target_refs"] = tr
                e["invoice"] = inv
                f.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False))
                f.write("\n")
                n += 1
    print(n)


if __name__ == "__main__":
    sys.exit(main())
