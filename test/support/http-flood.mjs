// Sends `total` GET requests to `url` from `concurrency` keep-alive connections, as fast as the server answers, and
// goes on until at least `minMs` have passed when that is given; prints one JSON line: the requests sent, the statuses
// counted, connection errors, and when the flood began and ended (Unix ms).
// Usage: node http-flood.mjs URL TOTAL CONCURRENCY [MIN_MS]
import { Agent, get } from 'node:http';

const [url, totalText, concurrencyText, minText] = process.argv.slice(2);
const total = Number(totalText);
const concurrency = Number(concurrencyText);
const minMs = Number(minText ?? 0);
if (!url || !(total > 0 && total <= 1_000_000) || !(concurrency > 0 && concurrency <= 1000) || !(minMs >= 0 && minMs <= 600_000)) {
  console.error('usage: node http-flood.mjs URL TOTAL(1-1000000) CONCURRENCY(1-1000) [MIN_MS(0-600000)]');
  process.exit(2);
}
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
const statuses = {};
let errors = 0;
let sent = 0;
const one = () =>
  new Promise((resolve) => {
    const req = get(url, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      errors++;
      setTimeout(resolve, 5); // a refused connection: do not spin
    });
  });
const startedAt = Date.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (sent < total || Date.now() - startedAt < minMs) {
      sent++;
      await one();
    }
  }),
);
agent.destroy();
console.log(JSON.stringify({ sent, statuses, errors, startedAt, endedAt: Date.now() }));
