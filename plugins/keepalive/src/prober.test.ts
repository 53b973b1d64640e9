import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { KeepaliveConfig } from './config.js';
import { Prober } from './prober.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PORT = 20_100 + (process.pid % 400);

it('the UDP probe counts loss, reordering and duplicates from what the echo sends back', async () => {
  // A peer that answers HTTP as n2, and whose UDP echo drops the 1st datagram of a round, echoes the 2nd twice and
  // the 3rd only after the 4th.
  const http = createServer((_req, res) => res.end(JSON.stringify({ node: 'n2', started: 'x' })));
  await new Promise<void>((r) => http.listen(PORT, '127.0.0.2', r));
  cleanups.push(() => new Promise((r) => http.close(r)));
  const udp = createSocket('udp4');
  let i = 0;
  let held: [Buffer, number, string] | undefined;
  udp.on('message', (msg, rinfo) => {
    const n = i++ % 5;
    if (n === 0) return;
    if (n === 2) {
      held = [msg, rinfo.port, rinfo.address];
      return;
    }
    udp.send(msg, rinfo.port, rinfo.address);
    if (n === 1) udp.send(msg, rinfo.port, rinfo.address);
    if (n === 3 && held) udp.send(...held);
  });
  await new Promise<void>((r) => udp.bind(PORT + 1, '127.0.0.2', r));
  cleanups.push(() => new Promise<void>((r) => udp.close(() => r())));

  const config = KeepaliveConfig.parse({ port: PORT, interval: '400ms', timeout: '250ms', jitter: 0, planes: ['underlay'], udp: { enabled: true, port: PORT + 1, packets: 5 } });
  const rounds: { sent: number; received: number; reordered: number; duplicates: number }[] = [];
  const outcomes: string[] = [];
  const prober = new Prober(config, { probed: (_t, _p, outcome) => outcomes.push(outcome), udp: (_t, _p, round) => rounds.push(round) }, () => 0);
  cleanups.push(() => prober.stop());
  prober.setPeers([{ name: 'n2', addresses: { underlay: { address: '127.0.0.2' } } }]);
  const deadline = Date.now() + 5000;
  while (rounds.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(rounds.slice(0, 2)).toEqual([
    { sent: 5, received: 4, reordered: 1, duplicates: 1 },
    { sent: 5, received: 4, reordered: 1, duplicates: 1 },
  ]);
  expect(outcomes.slice(0, 2)).toEqual(['ok', 'ok']);
  const [result] = prober.results();
  expect(result).toMatchObject({ target: 'n2', plane: 'underlay', up: true, ok: 2, failed: 0, udp: { lost: 2, reordered: 2, duplicates: 2, lastLoss: 0.2 } });
});

it('probes start on a grid, so that those due together share the wake-ups; never earlier than asked', async () => {
  const { onGrid, PROBE_SLOT_MS } = await import('./prober.js');
  for (const [delay, now] of [[0, 0], [1, 0], [40, 1_234.5], [9_000, 77.7], [PROBE_SLOT_MS, 5 * PROBE_SLOT_MS]] as const) {
    const moved = onGrid(delay, now);
    expect(moved).toBeGreaterThanOrEqual(delay);
    expect(moved - delay).toBeLessThan(PROBE_SLOT_MS);
    expect(Math.abs(((now + moved) / PROBE_SLOT_MS) % 1)).toBeLessThan(1e-9);
  }
});
