'use strict';
// http_floor.js: what undici alone costs per call, for scripts/bench; the Node peer's
// counterpart of tests/bench/http_floor (libcurl alone).
//
// POSTs one request N times with at most C calls in flight through one keep-alive undici Pool
// set up as the Node peer's (worker.js): one connection per call in flight, no pipelining. Each
// call has its own Idempotency-Key and X-Request-ID, as the peer's and the worker's do; each
// reply body is read whole. Nothing else: no Kafka, no Redis, no rendering.
//
// Before the measured calls, WARMUP calls per connection (20) are made and not counted: they
// open the pool's connections and let V8 compile the hot path, a fixed cost of about half a
// second of CPU that would otherwise weigh on short runs (libcurl's is about 30 ms). The
// simulator sees them: the output's "warmup" says how many.
//
// The request file is "METHOD URL", header lines, an empty line, the body (the URL there is not
// used). Prints one JSON object: requests, ok (2xx), seconds, cpu_s, cpu_us_per_request,
// requests_per_s, peak_rss_kb, warmup. CPU is this process's user + system time from the first call to
// the last reply.
//
// usage: node http_floor.js REQUEST_FILE URL CONNECTIONS REQUESTS
const fs = require('fs');
const { Pool } = require('undici');

function readRequest(path) {
  const raw = fs.readFileSync(path);
  const end = raw.indexOf('\n\n');
  if (end < 0) throw new Error(`${path}: no empty line after the headers`);
  const lines = raw.subarray(0, end).toString('utf8').split('\n');
  const method = lines[0].split(' ')[0];
  const headers = {};
  for (const l of lines.slice(1)) {
    const colon = l.indexOf(':');
    if (colon <= 0) throw new Error(`${path}: not a header line: ${l}`);
    headers[l.slice(0, colon).trim().toLowerCase()] = l.slice(colon + 1).trim();
  }
  return { method, headers, body: raw.subarray(end + 2) };
}

async function main() {
  const [file, url, conns, reqs] = process.argv.slice(2);
  const connections = Number(conns);
  const total = Number(reqs);
  if (!file || !url || !(connections > 0) || !(total > 0)) {
    process.stderr.write('usage: node http_floor.js REQUEST_FILE URL CONNECTIONS REQUESTS\n');
    process.exit(2);
  }
  const req = readRequest(file);
  const u = new URL(url);
  const path = u.pathname + u.search;
  const pool = new Pool(u.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30e3,
    headersTimeout: 30e3,
    bodyTimeout: 30e3,
  });
  let sent = 0;
  let ok = 0;
  let failed = 0;
  const one = (last) => async () => {
    while (sent < last) {
      const i = sent++;
      try {
        const res = await pool.request({
          method: req.method,
          path,
          body: req.body,
          headers: {
            ...req.headers,
            'idempotency-key': `floor-${i}:centra_soap`,
            'x-request-id': `floor-${i}:centra_soap:1`,
          },
        });
        await res.body.text();
        if (res.statusCode >= 200 && res.statusCode < 300) ok++;
        else failed++;
      } catch (e) {
        failed++;
      }
    }
  };
  const warmup = 20 * connections;
  await Promise.all(Array.from({ length: connections }, one(warmup)));
  if (ok !== warmup) {
    process.stderr.write(`http_floor.js: ${warmup - ok} of ${warmup} warm-up calls failed\n`);
    process.exit(1);
  }
  ok = 0;
  sent = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(connections, total) }, one(total)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  await pool.close();
  process.stdout.write(JSON.stringify({
    requests: total,
    ok,
    failed,
    seconds,
    cpu_s: cpuS,
    cpu_us_per_request: (cpuS * 1e6) / total,
    requests_per_s: total / seconds,
    peak_rss_kb: process.resourceUsage().maxRSS,
    warmup,
  }) + '\n');
  process.exit(ok === total ? 0 : 1);
}

main().catch((e) => {
  process.stderr.write(`http_floor.js: ${e.stack || e}\n`);
  process.exit(2);
});
