#!/usr/bin/python3
"""reference_worker.py: the comparison worker for scripts/bench, written the way a team would write
it in an afternoon with Debian's python3-confluent-kafka, python3-redis and python3-requests.

It consumes invoice events, drops duplicates with a Redis SET NX EX per (event, target), renders
the Centra invoices_Update SOAP request (centra_soap only) with xml.etree from the standard
library, POSTs it from a pool of 64 threads (one keep-alive requests.Session per thread), and
produces one result per event. Same mapping as worker/targets/centra.c. It does less than
invoice-worker (no version ledger, no ordering per invoice, auto-commit, three naive retries),
which only makes it faster. Prints "results N" lines on stdout as results are acknowledged.
"""
import argparse
import json
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import redis
import requests
from confluent_kafka import Consumer, Producer

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CENTRA = "http://www.centra.com/webservices/"
SOAP_ACTION = '"http://www.centra.com/webservices/Invoices_Update"'
TARGET = "centra_soap"

ET.register_namespace("SOAP-ENV", SOAP_ENV)
ET.register_namespace("tns", CENTRA)  # ElementTree reserves ns<digits>


def q(name):
    return "{%s}%s" % (CENTRA, name)


# The mapping, one row per element, in the seed's order: (element, source). A source is a key
# of the object at hand, a callable, ("root", key path), ("group", key, rows) written only when
# the group's id is known, ("list", key, rows), or None (sent empty).
def _root(path):
    return ("root", path)


REF = lambda key, desc: [("id", key), ("description", desc)]  # noqa: E731

ADDRESS = [
    ("id", None), ("description", None), ("company", "company"), ("attn", "attn"),
    ("firstname", "first_name"), ("lastname", "last_name"), ("address1", "line1"),
    ("address2", "line2"), ("city", "city"), ("state", "state"), ("zipcode", "postal_code"),
    ("country", "country"), ("email", "email"), ("telephone", "phone"), ("fax", "fax"),
    ("vat", _root("customer.fiscal_id")), ("url", _root("customer.website")),
    ("companyregistrationid", _root("customer.company_reg_id")),
    ("ecvatno", _root("customer.ec_vat_no")),
]
ITEM = [
    ("itemid", "item_id"), ("qty", "quantity"), ("price", "unit_price"), ("tax", "tax_amount"),
    ("subtotal", "line_subtotal"),
    ("description", lambda l, inv: l.get("description") or l.get("name")),
    ("product", ("self", REF("product_id", "name"))),
    ("variation", ("self", REF("variation_id", None))),
    ("size", ("self", REF("size_id", None))),
    ("discount", "discount_amount"), ("sku", "sku"),
]
ADDITIONAL = [("subtotal", "amount"), ("description", "description"), ("key", "key"), ("id", "id")]
INVOICE = [
    ("id", lambda inv, _: (inv.get("target_refs") or {}).get("centra_id") or inv["id"]),
    ("store", "store"), ("status", "status"), ("serialno", "number"),
    ("documenttype", "document_type"), ("type", "type"), ("currency", "currency"),
    ("currencyrate", "currency_rate"), ("basecurrency", "base_currency"), ("total", "total"),
    ("vat", "tax_total"), ("totalpaid", "amount_paid"), ("invoicedate", "issue_date"),
    ("orderdate", "order_date"), ("duedate", "due_date"),
    ("buyer", ("group", "refs", [("id", "buyer_id"), ("description", _root("customer.name"))])),
    ("account", ("group", "refs",
                 [("id", "account_id"), ("description", _root("billing_address.company"))])),
    ("order", ("group", "refs", [("id", "order_id"), ("description", _root("so_number"))])),
    ("shipment", ("group", "refs", [("id", "shipment_id"), ("description", _root("ship_via"))])),
    ("refund", ("group", "refs", [("id", "refund_id"), ("description", None)])),
    ("paymentterms", lambda inv, _: inv.get("terms_description") or inv.get("terms_code")),
    ("shippingterms", "shipping_terms"), ("internalinformation", "note_internal"),
    ("ponumber", "po_number"),
    ("billingaddress", ("object", "billing_address", ADDRESS)),
    ("shippingaddress", ("object", "shipping_address", ADDRESS)),
    ("items", ("items", None, None)),
    ("locked", lambda inv, _: None if (inv.get("flags") or {}).get("locked") is None
     else ("true" if inv["flags"]["locked"] else "false")),
]


def lookup(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def text_of(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def write_rows(parent, rows, obj, inv):
    for name, src in rows:
        if isinstance(src, tuple):
            kind = src[0]
            if kind == "root":
                v = text_of(lookup(inv, src[1]))
                if v is not None:
                    ET.SubElement(parent, q(name)).text = v
            elif kind in ("group", "self"):
                sub = (obj.get(src[1]) or {}) if kind == "group" else obj
                sub_rows = src[2] if kind == "group" else src[1]
                if sub.get(sub_rows[0][1]) is not None:  # a reference is written when its id is known
                    write_rows(ET.SubElement(parent, q(name)), sub_rows, sub, inv)
            elif kind == "object":
                sub = obj.get(src[1])
                if sub:
                    write_rows(ET.SubElement(parent, q(name)), src[2], sub, inv)
            elif kind == "items":
                items = ET.SubElement(parent, q(name))
                for line in inv.get("lines") or []:
                    write_rows(ET.SubElement(items, q("invoiceitem")), ITEM, line, inv)
                for extra in inv.get("extra_charges") or []:
                    write_rows(ET.SubElement(items, q("additional")), ADDITIONAL, extra, inv)
        elif src is None:
            ET.SubElement(parent, q(name))
        else:
            v = text_of(src(obj, inv) if callable(src) else obj.get(src))
            if v is not None:
                ET.SubElement(parent, q(name)).text = v


def render(ev, username, password):
    env = ET.Element("{%s}Envelope" % SOAP_ENV)
    body = ET.SubElement(env, "{%s}Body" % SOAP_ENV)
    update = ET.SubElement(body, q("invoices_Update"))
    login = ET.SubElement(update, q("login"))
    ET.SubElement(login, q("username")).text = username
    ET.SubElement(login, q("password")).text = password
    invoice = ET.SubElement(ET.SubElement(update, q("invoices")), q("invoice"))
    write_rows(invoice, INVOICE, ev["invoice"], ev["invoice"])
    return ET.tostring(env, encoding="utf-8", xml_declaration=True)


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Worker:
    def __init__(self, a):
        self.a = a
        self.local = threading.local()
        self.redis = redis.Redis(host="127.0.0.1", port=a.redis_port)
        self.producer = Producer({"bootstrap.servers": a.brokers, "linger.ms": 5,
                                  "enable.idempotence": True})
        self.consumer = Consumer({"bootstrap.servers": a.brokers, "group.id": a.group,
                                  "auto.offset.reset": "earliest",
                                  "session.timeout.ms": 6000})
        self.pool = ThreadPoolExecutor(max_workers=64)
        self.slots = threading.BoundedSemaphore(1024)  # events in the pool at most
        self.acked = 0
        self.stop = False

    def session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1)
            s.mount("http://", adapter)
        return s

    def delivered(self, err, msg):
        if err is None:
            self.acked += 1

    def handle(self, key, value):
        try:
            ev = json.loads(value)
            event_id = ev["event_id"]
            first = now_iso()
            if not self.redis.set("ref:%s:%s" % (event_id, TARGET), "1", nx=True, ex=7 * 86400):
                status, http, attempts, error = "duplicate", None, 0, None
            else:
                body = render(ev, self.a.username, self.a.password)
                headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION,
                           "Idempotency-Key": "%s:%s" % (event_id, TARGET),
                           "X-Invoice-Version": str(ev["version"])}
                status, http, attempts, error = "failed", None, 0, None
                for attempt in range(1, 4):
                    attempts = attempt
                    headers["X-Request-ID"] = "%s:%s:%d" % (event_id, TARGET, attempt)
                    try:
                        r = self.session().post(self.a.url, data=body, headers=headers, timeout=30)
                        http = r.status_code
                        if r.status_code == 200 and b"<ns1:success>false" not in r.content:
                            status, error = "succeeded", None
                            break
                        error = {"kind": "remote", "message": "HTTP %d" % r.status_code}
                        if r.status_code < 500:
                            break
                    except requests.RequestException as e:
                        error = {"kind": "transport", "message": str(e)[:200]}
                    time.sleep(0.25 * attempt)
                if status != "succeeded":
                    self.redis.delete("ref:%s:%s" % (event_id, TARGET))
            result = {"schema": "invoice-result/v1", "event_id": event_id,
                      "tenant": ev.get("tenant"), "invoice_id": ev["invoice"]["id"],
                      "version": ev.get("version"), "target": TARGET, "status": status,
                      "attempts": attempts, "http_status": http, "error": error,
                      "first_attempt_at": first, "finished_at": now_iso(),
                      "result_id": "%s/%s" % (event_id, TARGET)}
        except Exception as e:  # a poison event still gets a result
            result = {"schema": "invoice-result/v1", "status": "rejected",
                      "error": {"kind": "validation", "message": str(e)[:200]}}
        finally:
            self.slots.release()
        while True:
            try:
                self.producer.produce(self.a.results_topic, json.dumps(result), key,
                                      on_delivery=self.delivered)
                break
            except BufferError:
                time.sleep(0.01)

    def run(self):
        self.consumer.subscribe(
            [self.a.topic], on_assign=lambda c, ps: print("assigned %d" % len(ps), flush=True))
        last = 0.0
        while not self.stop:
            for m in self.consumer.consume(num_messages=500, timeout=0.1):
                if m.error():
                    continue
                self.slots.acquire()
                self.pool.submit(self.handle, m.key(), m.value())
            self.producer.poll(0)
            if time.monotonic() - last > 0.5:
                last = time.monotonic()
                print("results %d" % self.acked, flush=True)
        self.pool.shutdown(wait=True)
        self.producer.flush(30)
        self.consumer.close()
        print("results %d" % self.acked, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--url", required=True, help="the centra_soap endpoint")
    ap.add_argument("--username", default="demo")
    ap.add_argument("--password", default="demo")
    ap.add_argument("--group", default="reference-worker")
    ap.add_argument("--topic", default="invoice-events")
    ap.add_argument("--results-topic", default="invoice-results")
    w = Worker(ap.parse_args())

    def on_term(signum, frame):
        w.stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    w.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
