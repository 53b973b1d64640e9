import { describe, expect, it } from 'vitest';
import { assembleMatrix, diagnose, health, type NodeStatus, nodeStatus } from './matrix.js';
import type { ProbeResult } from './prober.js';
import { firstHost } from './targets.js';

const r = (target: string, plane: ProbeResult['plane'], up: boolean, extra: Partial<ProbeResult> = {}): ProbeResult => ({ target, plane, up, at: 1, ok: up ? 1 : 0, failed: up ? 0 : 1, result: up ? 'ok' : 'timeout', ...(up ? { rttMs: 0.4 } : {}), ...extra });

const noOverlay: ProbeResult = { target: 'b', plane: 'overlay', up: false, ok: 0, failed: 0, missing: 'no overlay address published' };

describe('diagnosis from the planes together', () => {
  it.each([
    [[r('b', 'underlay', true), r('b', 'overlay', false)], 'tunnel: the underlay answers, the overlay does not — look at WireGuard (handshakes, endpoints, keys)'],
    [[r('b', 'underlay', true), r('b', 'overlay', true), r('b', 'pod', false)], 'pod network: the node answers, the address in its pod CIDR does not — look at its pod bridge and routes'],
    [[r('b', 'underlay', false), r('b', 'overlay', true)], 'underlay: its internal address does not answer while the overlay does — a firewall or route on the underlay'],
    [[r('b', 'underlay', false), r('b', 'overlay', false)], 'unreachable: the node does not answer on any plane — is it down, or cut off?'],
    [[r('b', 'underlay', true), r('b', 'overlay', true)], undefined],
    [[r('b', 'underlay', true), noOverlay], undefined],
    // Its kernel resets the connection: the node is there, its agent is not (the tunnel may still carry traffic).
    [[r('b', 'underlay', false, { result: 'refused' }), r('b', 'overlay', false, { result: 'refused' }), r('b', 'pod', true)], 'agent: the node answers but its weft agent does not (probe port refused) — is the agent stopped?'],
    [[r('b', 'underlay', false, { result: 'refused' }), noOverlay], 'agent: the node answers but its weft agent does not (probe port refused) — is the agent stopped?'],
    // Refused on one plane, silent on the other: not a stopped agent.
    [[r('b', 'underlay', false, { result: 'refused' }), r('b', 'overlay', false)], 'unreachable: the node does not answer on any plane — is it down, or cut off?'],
  ])('%j → %s', (results, text) => {
    expect(diagnose(results)).toBe(text);
  });
});

describe('the cluster matrix', () => {
  const status = (node: string, results: ProbeResult[]) => nodeStatus({ node, started: 'x', intervalMs: 1000, planes: ['underlay', 'overlay'], probing: [...new Set(results.map((x) => x.target))] }, results);
  it('puts every answering node in; one that does not answer is listed, the rest stand', () => {
    const statuses = new Map<string, NodeStatus | { error: string }>([
      ['a', status('a', [r('b', 'underlay', true), r('b', 'overlay', false), r('c', 'underlay', true), r('c', 'overlay', true)])],
      ['b', status('b', [r('a', 'underlay', true), r('a', 'overlay', true)])],
      ['c', { error: 'connect ECONNREFUSED 192.0.2.3:9472' }],
    ]);
    const m = assembleMatrix(['c', 'a', 'b'], ['underlay', 'overlay'], statuses, new Date(0));
    expect(m.nodes).toEqual(['a', 'b', 'c']);
    expect(m.missing).toEqual([{ node: 'c', error: 'connect ECONNREFUSED 192.0.2.3:9472' }]);
    expect(m.cells.map((c) => `${c.source}>${c.target} ${c.plane} ${c.up ? 'up' : 'down'}`)).toEqual([
      'a>b underlay up',
      'a>b overlay down',
      'a>c underlay up',
      'a>c overlay up',
      'b>a underlay up',
      'b>a overlay up',
    ]);
    expect(m.diagnosis).toEqual([{ source: 'a', target: 'b', text: 'tunnel: the underlay answers, the overlay does not — look at WireGuard (handshakes, endpoints, keys)' }]);
    const h = health(m);
    expect(h.healthy).toBe(false);
    expect(h.failing).toEqual([{ source: 'a', target: 'b', plane: 'overlay', result: 'timeout' }]);
    expect(h.missing).toHaveLength(1);
    expect(health(assembleMatrix(['a', 'b'], ['underlay'], new Map([['a', status('a', [r('b', 'underlay', true)])], ['b', status('b', [r('a', 'underlay', true)])]]))).healthy).toBe(true);
  });

  it("a node's summary and convergence", () => {
    expect(status('a', [r('b', 'underlay', true), r('b', 'overlay', false)])).toMatchObject({ summary: '1/2 probes up, failing: b', converged: false });
    expect(status('a', [r('b', 'underlay', true), r('b', 'overlay', true)])).toMatchObject({ summary: '2/2 probes up', converged: true });
  });

  it("a pod CIDR's first host", () => {
    expect([firstHost('198.19.3.0/24'), firstHost('198.19.3.77/26'), firstHost('2001:db8:1::/64')]).toEqual(['198.19.3.1', '198.19.3.65', '2001:db8:1::1']);
  });
});
