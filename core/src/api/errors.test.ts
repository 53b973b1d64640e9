import { describe, expect, it } from 'vitest';
import { describeError, WeftError } from './errors.js';

describe('describeError', () => {
  it('says the cause of a generic error, with its code: a refused connection behind "fetch failed"', async () => {
    const { createServer } = await import('node:net');
    const server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    await new Promise((r) => server.close(r)); // nothing listens there now
    const err: unknown = await fetch(`http://127.0.0.1:${String(port)}/`).catch((e: unknown) => e);
    expect(describeError(err)).toBe(`fetch failed: connect ECONNREFUSED 127.0.0.1:${String(port)}`);
  });

  it('adds a code the message lacks, each cause once, never a weft code', () => {
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(describeError(new Error('fetch failed', { cause: tls }))).toBe('fetch failed: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)');
    const inner = new Error('disk full');
    expect(describeError(new Error('cannot save: disk full', { cause: inner }))).toBe('cannot save: disk full');
    expect(describeError(new WeftError('WEFT_CONFIG_INVALID', 'bad line'))).toBe('bad line');
  });

  it('describes what is not an Error', () => {
    expect(describeError('plain')).toBe('plain');
    expect(describeError(42)).toBe('42');
    expect(describeError({ reason: 'x' })).toBe('a non-Error was thrown: {"reason":"x"}');
    expect(describeError({ message: 'looks like one' })).toBe('looks like one');
  });
});
