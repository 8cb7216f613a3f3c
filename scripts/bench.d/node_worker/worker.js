#!/usr/bin/env node
// worker.js: the Node.js peer for scripts/bench, written the way a Node team would write this
// worker: @confluentinc/kafka-javascript through its node-rdkafka-compatible API (librdkafka),
// ioredis, an undici Pool and XML string templates. That API, not the KafkaJS-compatible one,
// because it consumes in batches (consume(n, cb)); the KafkaJS API of the release that builds
// against Debian's librdkafka 2.0.2 (0.1.9-devel) rejects eachBatch as not implemented.
//
// It consumes invoice events in batches, drops duplicates with a Redis SET NX EX per
// (event, target) (ioredis with auto-pipelining, so the SETs of one batch share round trips),
// renders the Centra invoices_Update SOAP request (centra_soap only) with template literals,
// POSTs it through one keep-alive undici Pool with at most --max-in-flight requests in flight,
// and produces one result per event to invoice-results. Same mapping as reference_worker.py
// and worker/targets/centra.c. Like the Python reference it does less than invoice-worker (no
// version ledger, no ordering per invoice, auto-commit, three naive retries).
// Prints "assigned N" on assignment and "results N" lines on stdout as results are
// acknowledged by the broker, as reference_worker.py does.
'use strict';

const Kafka = require('@confluentinc/kafka-javascript');
const Redis = require('ioredis');
const { Pool } = require('undici');

const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
const CENTRA = 'http://www.centra.com/webservices/';
const SOAP_ACTION = '"http://www.centra.com/webservices/Invoices_Update"';
const TARGET = 'centra_soap';
const DEDUP_TTL_S = 7 * 86400;

function parseArgs(argv) {
  const a = {
    username: 'demo', password: 'demo', group: 'node-worker', topic: 'invoice-events',
    resultsTopic: 'invoice-results', maxInFlight: 512, batch: 1000,
  };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[++i];
    switch (k) {
      case '--brokers': a.brokers = v; break;
      case '--redis-port': a.redisPort = Number(v); break;
      case '--url': a.url = v; break;
      case '--username': a.username = v; break;
      case '--password': a.password = v; break;
      case '--group': a.group = v; break;
      case '--topic': a.topic = v; break;
      case '--results-topic': a.resultsTopic = v; break;
      case '--max-in-flight': a.maxInFlight = Number(v); break;
      case '--batch': a.batch = Number(v); break;
      default: throw new Error('unknown option ' + k);
    }
  }
  if (!a.brokers || !a.redisPort || !a.url) {
    throw new Error('usage: worker.js --brokers B --redis-port P --url URL [--max-in-flight N]');
  }
  return a;
}

// ---- rendering: XML string templates ----

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };
function esc(s) {
  return /[&<>]/.test(s) ? s.replace(/[&<>]/g, (c) => ESC[c]) : s;
}

function text(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return String(v);
}

// <tns:name>value</tns:name> when value is known, nothing otherwise
function el(name, v) {
  const t = text(v);
  return t === null ? '' : `<tns:${name}>${esc(t)}</tns:${name}>`;
}

// a reference group (id + description), written only when its id is known; a description
// with no source (NO_SOURCE) is sent empty, as the reference does
const NO_SOURCE = Symbol('no source');
function ref(name, id, desc) {
  if (id === null || id === undefined) return '';
  const d = desc === NO_SOURCE ? '<tns:description/>' : el('description', desc);
  return `<tns:${name}>${el('id', id)}${d}</tns:${name}>`;
}

function address(name, a, c) {
  if (!a || Object.keys(a).length === 0) return '';
  return `<tns:${name}><tns:id/><tns:description/>` +
    `${el('company', a.company)}${el('attn', a.attn)}${el('firstname', a.first_name)}${el('lastname', a.last_name)}${el('address1', a.line1)}` +
    `${el('address2', a.line2)}${el('city', a.city)}${el('state', a.state)}` +
    `${el('zipcode', a.postal_code)}${el('country', a.country)}${el('email', a.email)}` +
    `${el('telephone', a.phone)}${el('fax', a.fax)}${el('vat', c.fiscal_id)}` +
    `${el('url', c.website)}${el('companyregistrationid', c.company_reg_id)}` +
    `${el('ecvatno', c.ec_vat_no)}</tns:${name}>`;
}

function item(l) {
  return `<tns:invoiceitem>${el('itemid', l.item_id)}${el('qty', l.quantity)}` +
    `${el('price', l.unit_price)}${el('tax', l.tax_amount)}${el('subtotal', l.line_subtotal)}` +
    `${el('description', l.description || l.name)}${ref('product', l.product_id, l.name)}` +
    `${ref('variation', l.variation_id, NO_SOURCE)}${ref('size', l.size_id, NO_SOURCE)}` +
    `${el('discount', l.discount_amount)}${el('sku', l.sku)}</tns:invoiceitem>`;
}

function additional(x) {
  return `<tns:additional>${el('subtotal', x.amount)}${el('description', x.description)}` +
    `${el('key', x.key)}${el('id', x.id)}</tns:additional>`;
}

function render(inv, username, password) {
  const r = inv.refs || {};
  const c = inv.customer || {};
  const flags = inv.flags || {};
  const locked = flags.locked === undefined || flags.locked === null ? null : !!flags.locked;
  return `<?xml version="1.0" encoding="utf-8"?>\n` +
    `<SOAP-ENV:Envelope xmlns:SOAP-ENV="${SOAP_ENV}" xmlns:tns="${CENTRA}"><SOAP-ENV:Body>` +
    `<tns:invoices_Update><tns:login>${el('username', username)}${el('password', password)}` +
    `</tns:login><tns:invoices><tns:invoice>` +
    el('id', (inv.target_refs && inv.target_refs.centra_id) || inv.id) +
    el('store', inv.store) + el('status', inv.status) + el('serialno', inv.number) +
    el('documenttype', inv.document_type) + el('type', inv.type) +
    el('currency', inv.currency) + el('currencyrate', inv.currency_rate) +
    el('basecurrency', inv.base_currency) + el('total', inv.total) + el('vat', inv.tax_total) +
    el('totalpaid', inv.amount_paid) + el('invoicedate', inv.issue_date) +
    el('orderdate', inv.order_date) + el('duedate', inv.due_date) +
    ref('buyer', r.buyer_id, c.name) +
    ref('account', r.account_id, inv.billing_address && inv.billing_address.company) +
    ref('order', r.order_id, inv.so_number) +
    ref('shipment', r.shipment_id, inv.ship_via) +
    ref('refund', r.refund_id, NO_SOURCE) +
    el('paymentterms', inv.terms_description || inv.terms_code) +
    el('shippingterms', inv.shipping_terms) + el('internalinformation', inv.note_internal) +
    el('ponumber', inv.po_number) +
    address('billingaddress', inv.billing_address, c) +
    address('shippingaddress', inv.shipping_address, c) +
    `<tns:items>${(inv.lines || []).map(item).join('')}` +
    `${(inv.extra_charges || []).map(additional).join('')}</tns:items>` +
    el('locked', locked) +
    `</tns:invoice></tns:invoices></tns:invoices_Update></SOAP-ENV:Body></SOAP-ENV:Envelope>`;
}

// ---- the worker ----

class Worker {
  constructor(a) {
    this.a = a;
    const u = new URL(a.url);
    this.path = u.pathname + u.search;
    this.pool = new Pool(u.origin, {
      connections: a.maxInFlight, // one keep-alive connection per request in flight
      pipelining: 1,
      keepAliveTimeout: 30e3,
      headersTimeout: 30e3,
      bodyTimeout: 30e3,
    });
    this.redis = new Redis({ host: '127.0.0.1', port: a.redisPort, enableAutoPipelining: true });
    this.producer = new Kafka.Producer({
      'metadata.broker.list': a.brokers,
      // the worker's own default: at 5 ms librdkafka 2.0's producer threads poll without
      // waiting while results trickle in from a slow target
      'linger.ms': 20,
      'enable.idempotence': true,
      'dr_cb': true,
    });
    this.consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': a.brokers,
      'group.id': a.group,
      'session.timeout.ms': 6000,
      'enable.auto.commit': true,
      'rebalance_cb': (err, assignment) => this.rebalance(err, assignment),
    }, { 'auto.offset.reset': 'earliest' });
    this.inFlight = 0;
    this.acked = 0;
    this.stopping = false;
    this.consuming = false;
  }

  rebalance(err, assignment) {
    if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
      this.consumer.assign(assignment);
      console.log(`assigned ${assignment.length}`);
    } else {
      this.consumer.unassign();
    }
  }

  async start() {
    await Promise.all([
      new Promise((res, rej) => this.producer.connect({}, (e) => (e ? rej(e) : res()))),
      new Promise((res, rej) => this.consumer.connect({}, (e) => (e ? rej(e) : res()))),
    ]);
    this.producer.on('delivery-report', (err) => { if (!err) this.acked++; });
    this.producer.setPollInterval(10);
    this.consumer.setDefaultConsumeTimeout(50);
    this.consumer.subscribe([this.a.topic]);
    this.timer = setInterval(() => console.log(`results ${this.acked}`), 500);
    this.pump();
  }

  // Fetches the next batch when there is room: at most maxInFlight events are being handled.
  pump() {
    if (this.consuming || this.stopping) return;
    const room = Math.min(this.a.batch, this.a.maxInFlight - this.inFlight);
    if (room <= 0) return; // a completion calls pump() again
    this.consuming = true;
    this.consumer.consume(room, (err, msgs) => {
      this.consuming = false;
      if (!err) {
        for (const m of msgs) {
          this.inFlight++;
          this.handle(m).finally(() => { this.inFlight--; this.pump(); });
        }
      }
      if (!this.stopping) setImmediate(() => this.pump());
    });
  }

  async handle(m) {
    const first = new Date().toISOString();
    let result;
    try {
      const ev = JSON.parse(m.value);
      const eventId = ev.event_id;
      const key = `ref:${eventId}:${TARGET}`;
      let status = 'failed';
      let http = null;
      let attempts = 0;
      let error = null;
      if ((await this.redis.set(key, '1', 'EX', DEDUP_TTL_S, 'NX')) === null) {
        status = 'duplicate';
      } else {
        const body = render(ev.invoice, this.a.username, this.a.password);
        for (let attempt = 1; attempt <= 3; attempt++) {
          attempts = attempt;
          try {
            const res = await this.pool.request({
              method: 'POST', path: this.path, body,
              headers: {
                'content-type': 'text/xml; charset=utf-8', 'soapaction': SOAP_ACTION,
                'idempotency-key': `${eventId}:${TARGET}`,
                'x-request-id': `${eventId}:${TARGET}:${attempt}`,
                'x-invoice-version': String(ev.version),
              },
            });
            http = res.statusCode;
            const reply = await res.body.text();
            if (http === 200 && !reply.includes('<ns1:success>false')) {
              status = 'succeeded';
              error = null;
              break;
            }
            error = { kind: 'remote', message: `HTTP ${http}` };
            if (http < 500) break;
          } catch (e) {
            error = { kind: 'transport', message: String(e.message).slice(0, 200) };
          }
          await new Promise((r) => setTimeout(r, 250 * attempt));
        }
        if (status !== 'succeeded') await this.redis.del(key);
      }
      result = {
        schema: 'invoice-result/v1', event_id: eventId, tenant: ev.tenant,
        invoice_id: ev.invoice.id, version: ev.version, target: TARGET, status, attempts,
        http_status: http, error, first_attempt_at: first,
        finished_at: new Date().toISOString(), result_id: `${eventId}/${TARGET}`,
      };
    } catch (e) { // a poison event still gets a result
      result = {
        schema: 'invoice-result/v1', status: 'rejected',
        error: { kind: 'validation', message: String(e.message).slice(0, 200) },
      };
    }
    await this.produce(m.key, Buffer.from(JSON.stringify(result)));
  }

  async produce(key, value) {
    for (;;) {
      try {
        this.producer.produce(this.a.resultsTopic, null, value, key);
        return;
      } catch (e) {
        if (e.code !== Kafka.CODES.ERRORS.ERR__QUEUE_FULL) throw e;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    while (this.inFlight > 0 || this.consuming) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => this.producer.flush(30000, () => r()));
    clearInterval(this.timer);
    console.log(`results ${this.acked}`);
    await new Promise((r) => this.consumer.disconnect(() => r()));
    await new Promise((r) => this.producer.disconnect(() => r()));
    await this.pool.close();
    this.redis.disconnect();
  }
}

async function main() {
  const w = new Worker(parseArgs(process.argv));
  const onSignal = () => {
    w.stop().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await w.start();
}

if (require.main === module) {
  main().catch((e) => { console.error(e); process.exit(1); });
}

module.exports = { render };
