import { describe, expect, it } from 'vitest';
import { localEndpoints, setUpPods, SoonRetry } from './pods.js';
import type { TunnelService } from './services.js';

const service = (name: string, vips: string[], endpoints: [string, string][]): TunnelService => ({
  namespace: 'web',
  name,
  uid: name,
  vips,
  affinity: 'flow',
  endpoints: endpoints.map(([address, nodeName]) => ({ address, family: address.includes(':') ? 6 : 4, nodeName, state: 'active' })),
  ignored: [],
});

describe('endpoint pods on a node', () => {
  it("this node's pods with the VIPs of their family, from every Service, sorted", () => {
    const services = [
      service('a', ['203.0.113.80', '2001:db8::80'], [['198.19.1.11', 'n1'], ['198.19.2.10', 'n2'], ['fd00:1::10', 'n1']]),
      service('b', ['203.0.113.81'], [['198.19.1.11', 'n1'], ['198.19.1.10', 'n1']]),
    ];
    expect([...localEndpoints(services, 'n1')]).toEqual([
      ['198.19.1.10', ['203.0.113.81']],
      ['198.19.1.11', ['203.0.113.80', '203.0.113.81']],
      ['fd00:1::10', ['2001:db8::80']],
    ]);
  });

  it('sets each up in its namespace; a missing, a contested and a failing pod are each their own; pods no longer wanted are cleared', async () => {
    const namespaces: Record<string, string> = { '198.19.1.10': '/run/netns/a', '198.19.1.12': '/run/netns/c' };
    const finder = {
      find: async (ip: string) => Promise.resolve(namespaces[ip] ? { path: namespaces[ip], inode: 1 } : undefined),
      contestedBy: (ip: string) => (ip === '198.19.1.13' ? [{ path: '/run/netns/x', inode: 2 }, { path: '/run/netns/y', inode: 3 }] : []),
    };
    const setUp: string[] = [];
    const cleared: string[] = [];
    const wanted = new Map([['198.19.1.10', ['203.0.113.80']], ['198.19.1.11', ['203.0.113.80']], ['198.19.1.12', ['203.0.113.80']], ['198.19.1.13', ['203.0.113.80']]]);
    const r = await setUpPods(
      wanted,
      new Map([['/run/netns/old', '198.19.1.9'], ['/run/netns/a', '198.19.1.10']]),
      finder as never,
      async (path) => {
        if (path === '/run/netns/c') throw new Error('RTNETLINK answers: Operation not permitted');
        setUp.push(path);
        return Promise.resolve();
      },
      async (path) => {
        cleared.push(path);
        return Promise.resolve();
      },
    );
    expect(r.pods.map((p) => [p.address, p.state, p.problem ?? ''])).toEqual([
      ['198.19.1.10', 'ready', ''],
      ['198.19.1.11', 'missing', 'no network namespace holds 198.19.1.11'],
      ['198.19.1.12', 'failed', 'RTNETLINK answers: Operation not permitted'],
      ['198.19.1.13', 'missing', '2 namespaces hold 198.19.1.13: none is set up'],
    ]);
    expect(setUp).toEqual(['/run/netns/a']);
    expect(cleared).toEqual(['/run/netns/old']);
    // The failing pod's namespace is kept: it is cleared once it stops being an endpoint.
    expect([...r.setUp.keys()]).toEqual(['/run/netns/a', '/run/netns/c']);
  });

  it('looks again soon for a pod not ready during its first minute, then leaves it to the resyncs', () => {
    const retry = new SoonRetry(60_000, 2000);
    expect(retry.next(['198.19.1.11'], 0)).toBe(2000);
    expect(retry.next(['198.19.1.11'], 59_000)).toBe(2000);
    expect(retry.next(['198.19.1.11'], 61_000)).toBeUndefined();
    // A second pod going missing gets its own minute.
    expect(retry.next(['198.19.1.11', '198.19.1.12'], 62_000)).toBe(2000);
    expect(retry.next([], 63_000)).toBeUndefined();
  });
});
