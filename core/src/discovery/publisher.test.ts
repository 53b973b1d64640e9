import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../observe/logger.js';
import { AnnotationPublisher } from './publisher.js';

function harness(failFirst = 0) {
  const node: Record<string, string> = { 'weft.io/old': 'x', other: 'kept' };
  const writes: Record<string, string | null>[] = [];
  let failures = failFirst;
  const logs: string[] = [];
  const publisher = new AnnotationPublisher({
    write: async (patch) => {
      await Promise.resolve();
      if (failures > 0) {
        failures -= 1;
        throw new Error('API unreachable');
      }
      writes.push({ ...patch });
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete node[k];
        else node[k] = v;
      }
    },
    current: () => node,
    logger: createLogger({ level: 'debug', format: 'json' }, new Writable({ write: (c: Buffer, _e, d) => (logs.push(c.toString()), d()) })),
    debounceMs: 5,
    backoffInitialMs: 10,
    backoffMaxMs: 40,
  });
  return { publisher, node, writes, logs };
}

describe('AnnotationPublisher', () => {
  it("merges every plugin's values into one patch, and writes nothing when nothing differs", async () => {
    const h = harness();
    h.publisher.publish('wireguard', { 'weft.io/wireguard-public-key': 'k1', 'weft.io/old': null });
    h.publisher.publish('keepalive', { 'weft.io/keepalive-port': '4242' });
    expect(await h.publisher.flushed()).toBe(true);
    expect(h.writes).toEqual([{ 'weft.io/wireguard-public-key': 'k1', 'weft.io/old': null, 'weft.io/keepalive-port': '4242' }]);
    h.publisher.publish('wireguard', { 'weft.io/wireguard-public-key': 'k1' });
    expect(await h.publisher.flushed()).toBe(true);
    expect(h.writes).toHaveLength(1);
    expect(h.node).toEqual({ other: 'kept', 'weft.io/wireguard-public-key': 'k1', 'weft.io/keepalive-port': '4242' });
    // Someone removed a published annotation: the same values published again put it back.
    delete h.node['weft.io/keepalive-port'];
    h.publisher.publish('keepalive', { 'weft.io/keepalive-port': '4242' });
    expect(await h.publisher.flushed()).toBe(true);
    expect(h.writes).toEqual([{ 'weft.io/wireguard-public-key': 'k1', 'weft.io/old': null, 'weft.io/keepalive-port': '4242' }, { 'weft.io/keepalive-port': '4242' }]);
  });

  it('writes once when the source shows the write only later (the watch brings it back), and again once it shows a change', async () => {
    const node: Record<string, string> = {};
    let shown: Record<string, string> = {};
    const writes: Record<string, string | null>[] = [];
    const publisher = new AnnotationPublisher({
      write: async (patch) => {
        await Promise.resolve();
        writes.push({ ...patch });
        for (const [k, v] of Object.entries(patch)) if (v !== null) node[k] = v;
      },
      current: () => shown,
      logger: createLogger({ level: 'silent', format: 'json' }),
      debounceMs: 1,
    });
    publisher.publish('wireguard', { 'weft.io/wireguard-public-key': 'k1' });
    await new Promise((r) => setTimeout(r, 100));
    expect(writes).toEqual([{ 'weft.io/wireguard-public-key': 'k1' }]);
    // Published again (every reconcile does) before the echo: still one write.
    publisher.publish('wireguard', { 'weft.io/wireguard-public-key': 'k1' });
    await new Promise((r) => setTimeout(r, 50));
    expect(writes).toHaveLength(1);
    // The echo comes; later someone else removes the annotation: the next publish puts it back.
    shown = { ...node };
    expect(publisher.pending()).toEqual({});
    shown = {};
    publisher.publish('wireguard', { 'weft.io/wireguard-public-key': 'k1' });
    expect(await publisher.flushed()).toBe(true);
    expect(writes).toEqual([{ 'weft.io/wireguard-public-key': 'k1' }, { 'weft.io/wireguard-public-key': 'k1' }]);
  });

  it("a switched-off plugin's key that comes back after its removal was written is removed again once the echo wait ends", async () => {
    let shown: Record<string, string> = { 'weft.io/announce': 'hello' };
    const writes: Record<string, string | null>[] = [];
    const publisher = new AnnotationPublisher({
      write: async (patch) => {
        await Promise.resolve();
        writes.push({ ...patch });
        shown = Object.fromEntries(Object.entries({ ...shown, ...patch }).filter((e): e is [string, string] => e[1] !== null));
      },
      current: () => shown,
      logger: createLogger({ level: 'silent', format: 'json' }),
      debounceMs: 1,
      echoWaitMs: 100,
    });
    try {
      publisher.publish('announcer', { 'weft.io/announce': 'hello' });
      publisher.forget('announcer');
      await new Promise((r) => setTimeout(r, 30));
      expect(writes).toEqual([{ 'weft.io/announce': null }]);
      // What a second writer does (a replaced discovery source writing back the document it read before): the key is
      // there again, and the plugin that owned it publishes no more. Once the echo wait ends it is removed again.
      shown = { 'weft.io/announce': 'hello' };
      await new Promise((r) => setTimeout(r, 400));
      expect(writes).toEqual([{ 'weft.io/announce': null }, { 'weft.io/announce': null }]);
      expect(shown).toEqual({});
    } finally {
      publisher.stop();
    }
  });

  it('retries with backoff until the write lands (an outage delays, never loses)', async () => {
    const h = harness(3);
    h.publisher.publish('wireguard', { 'weft.io/wireguard-endpoint': '192.0.2.1:51820' });
    expect(await h.publisher.flushed()).toBe(true);
    expect(h.writes).toEqual([{ 'weft.io/wireguard-endpoint': '192.0.2.1:51820' }]);
    expect(h.logs.filter((l) => l.includes('publishing annotations failed'))).toHaveLength(3);
  });

  /** A publisher whose backoff is a minute long, so that only the connection's return can end it early. */
  const longBackoff = (write: (patch: Record<string, string | null>) => Promise<void>, connected: () => boolean, current: () => Record<string, string> = () => ({})) =>
    new AnnotationPublisher({
      write,
      current,
      connected,
      logger: createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, d) => d() })),
      debounceMs: 5,
      backoffInitialMs: 60_000,
      backoffMaxMs: 60_000,
    });

  it("a write that failed while disconnected lands within 250 ms of the connection's return, not after its backoff", async () => {
    let connected = false;
    let attempts = 0;
    const writes: Record<string, string | null>[] = [];
    const write = async (patch: Record<string, string | null>) => {
      await Promise.resolve();
      attempts += 1;
      if (!connected) throw new Error('connect ECONNREFUSED');
      writes.push({ ...patch });
    };
    const publisher = longBackoff(write, () => connected, () => Object.assign({}, ...writes) as Record<string, string>);
    try {
      publisher.publish('wireguard', { 'weft.io/wireguard-endpoint': '192.0.2.1:51820' });
      await new Promise((r) => setTimeout(r, 600));
      expect(attempts).toBe(1); // no retry while disconnected: the backoff holds
      connected = true;
      const back = performance.now();
      expect(await publisher.flushed(2_000)).toBe(true);
      expect(performance.now() - back).toBeLessThan(1_000);
      expect(writes).toEqual([{ 'weft.io/wireguard-endpoint': '192.0.2.1:51820' }]);
    } finally {
      publisher.stop();
    }
  });

  it('a write refused by a server that answers waits out its whole backoff (no hammering)', async () => {
    let attempts = 0;
    const write = async () => {
      await Promise.resolve();
      attempts += 1;
      throw new Error('403 Forbidden');
    };
    const publisher = longBackoff(write, () => true);
    try {
      publisher.publish('wireguard', { 'weft.io/wireguard-endpoint': '192.0.2.1:51820' });
      await new Promise((r) => setTimeout(r, 700));
      expect(attempts).toBe(1);
    } finally {
      publisher.stop();
    }
  });

  it("removes a switched-off plugin's keys, and refuses keys outside weft.io/", async () => {
    const h = harness();
    h.publisher.publish('a', { 'weft.io/a': '1' });
    h.publisher.publish('b', { 'weft.io/b': '2' });
    await h.publisher.flushed();
    h.publisher.forget('a');
    await h.publisher.flushed();
    expect(h.node).toEqual({ other: 'kept', 'weft.io/old': 'x', 'weft.io/b': '2' });
    expect(() => h.publisher.publish('a', { 'kubernetes.io/hostname': 'x' })).toThrow('plugin "a": annotation "kubernetes.io/hostname" is not weft.io/<name>');
  });
});
