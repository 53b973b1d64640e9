// Sends `total` GET requests to `url` from `concurrency` keep-alive connections, as fast as the server answers;
// prints one JSON line: the statuses counted, connection errors, and when the flood began and ended (Unix ms).
// Usage: node http-flood.mjs URL TOTAL CONCURRENCY
import { Agent, get } from 'node:http';

const [url, totalText, concurrencyText] = process.argv.slice(2);
const total = Number(totalText);
const concurrency = Number(concurrencyText);
if (!url || !(total > 0 && total <= 1_000_000) || !(concurrency > 0 && concurrency <= 1000)) {
  console.error('usage: node http-flood.mjs URL TOTAL(1-1000000) CONCURRENCY(1-1000)');
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
    while (sent < total) {
      sent++;
      await one();
    }
  }),
);
agent.destroy();
console.log(JSON.stringify({ statuses, errors, startedAt, endedAt: Date.now() }));
