import { describe, expect, it } from 'vitest';
import { relevantEvent } from './monitor.js';

// Lines as `ip -o monitor link address route rule neigh` prints them (captured on Debian 12, iproute2 6.1).
describe('which kernel events make the driver read again', () => {
  it('links, addresses, routes of a protocol, rules and permanent neighbours do', () => {
    for (const line of [
      '2: wmx0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UNKNOWN group default \\    link/ether 92:d3:d9:d7:a7:9a brd ff:ff:ff:ff:ff:ff',
      'Deleted 2: wmx0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 92:d3:d9:d7:a7:9a brd ff:ff:ff:ff:ff:ff',
      '2: wmx0    inet 198.18.99.1/24 scope global wmx0\\       valid_lft forever preferred_lft forever',
      '2: wmx0    inet6 fd00:99::1/64 scope global \\       valid_lft forever preferred_lft forever',
      '198.18.98.0/24 via 198.18.99.2 dev wmx0 proto 160 ',
      'Deleted 198.18.98.0/24 via 198.18.99.2 dev wmx0 proto 160 ',
      '900:\tfrom all lookup 99',
      '198.18.99.5 dev wmx0 lladdr 02:00:00:00:00:05 PERMANENT ',
      'Deleted 198.18.99.5 dev wmx0 lladdr 02:00:00:00:00:05 PERMANENT ',
      'dev wmx0 lladdr 92:d3:d9:d7:a7:9a PERMANENT ',
    ]) {
      expect(relevantEvent(line), line).toBe(true);
    }
  });

  it('ARP and NDP coming and going, the kernel\'s own routes and IPv6 link-local addresses do not', () => {
    for (const line of [
      '198.18.99.6 dev wmx0 lladdr 02:00:00:00:00:06 REACHABLE ',
      '198.18.99.6 dev wmx0 lladdr 02:00:00:00:00:06 STALE ',
      '198.18.99.6 dev wmx0 FAILED ',
      'Deleted 198.18.99.6 dev wmx0 FAILED ',
      'fe80::1 dev eth0 lladdr 02:00:00:00:00:01 router DELAY ',
      'Miss 198.18.99.7 dev wmx0 INCOMPLETE ',
      'local 198.18.99.1 dev wmx0 table local proto kernel scope host src 198.18.99.1 ',
      '198.18.99.0/24 dev wmx0 proto kernel scope link src 198.18.99.1 ',
      'multicast ff00::/8 dev wmx0 table local proto kernel metric 256 pref medium',
      '2: wmx0    inet6 fe80::90d3:d9ff:fed7:a79a/64 scope link \\       valid_lft forever preferred_lft forever',
      '',
    ]) {
      expect(relevantEvent(line), line).toBe(false);
    }
  });
});
