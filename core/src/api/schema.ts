import { isIP } from 'node:net';
import { z } from 'zod';
import { canonicalIP, canonicalNetwork } from '../kernel/ip.js';

// Zod compiles a fast path for each object schema (`new Function`) the first time it parses with it: ~10 ms of the
// agent's start for schemas that parse a config once, and compiled code kept for the life of the process. Interpreted,
// a parse of a config or a node document costs well under a millisecond.
z.config({ jitless: true });

/** Renders a config value for an error message: strings quoted, the rest as JSON. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return `a ${typeof value}`;
}

const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `"1m30s"`, `"500ms"`, `"2h"` into milliseconds; `undefined` when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(amount) * (UNIT_MS[unit as string] as number);
  }
  return Math.round(total);
}

/** Milliseconds as a config would write them: `500ms`, `1s`, `1m30s`, `2h`. */
function humanDuration(ms: number): string {
  if (ms < 1000 || ms % 1000 !== 0) return `${String(ms)}ms`;
  const parts: string[] = [];
  let rest = ms / 1000;
  for (const [unit, size] of [['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      parts.push(`${String(Math.floor(rest / size))}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}

/** A label key: an optional DNS prefix and a name (Kubernetes' syntax, checked loosely). */
export const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** A label value (may be empty). */
export const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** A node selector in a plugin's config: label key → value; a node is selected when it has every one ({@link selectsNode}). */
export function nodeSelector() {
  return z.record(
    z.string().regex(LABEL_KEY, { error: (iss) => `expected a label key, got ${describeValue(iss.input)}` }),
    z.string().regex(LABEL_VALUE, { error: (iss) => `expected a label value, got ${describeValue(iss.input)}` }),
  );
}

/** Whether a node's labels carry every label of a selector (`{}` selects every node). */
export function selectsNode(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/** A duration written as text (`"10s"`, `"500ms"`, `"1m30s"`), parsed into milliseconds. */
export function duration(options: { min?: number; max?: number } = {}) {
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = options;
  const expected = 'expected a duration like "10s", "500ms" or "1m30s"';
  return z
    .string({ error: (iss) => `${expected}, got ${describeValue(iss.input)}` })
    .regex(DURATION, { error: (iss) => `${expected}, got ${describeValue(iss.input)}` })
    .transform((text, ctx) => {
      const ms = parseDuration(text) as number;
      if (ms < min || ms > max) {
        const bound = max === Number.MAX_SAFE_INTEGER ? `of at least ${humanDuration(min)}` : min === 0 ? `of at most ${humanDuration(max)}` : `between ${humanDuration(min)} and ${humanDuration(max)}`;
        ctx.issues.push({ code: 'custom', input: text, message: `expected a duration ${bound}, got ${JSON.stringify(text)}` });
        return z.NEVER;
      }
      return ms;
    })
    .meta({ description: 'duration: a number with unit ms, s, m or h, e.g. "10s", "1m30s"' });
}

/** An integer in `[min, max]`; the error reads `expected integer 1-65535, got "abc"`. */
export function intInRange(min: number, max: number) {
  const error = (iss: { input?: unknown }) => `expected integer ${min}-${max}, got ${describeValue(iss.input)}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/** A TCP/UDP port, 1-65535. */
export function port() {
  return intInRange(1, 65535);
}

/** An IPv4 or IPv6 address (no prefix). */
export function ipAddress() {
  return z.string().refine((s) => isIP(s) !== 0, { error: (iss) => `expected an IP address, got ${describeValue(iss.input)}` });
}

/** Parses `"10.0.0.0/24"` or `"fd00::/64"`; `undefined` when invalid. */
export function parseCIDR(text: string): { address: string; prefix: number; family: 4 | 6 } | undefined {
  const slash = text.lastIndexOf('/');
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const family = isIP(address);
  if (family === 0 || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (family === 4 ? 32 : 128)) return undefined;
  return { address, prefix, family: family as 4 | 6 };
}

/**
 * An IPv4 or IPv6 network in CIDR notation, host bits clear: `198.18.5.1/24` is refused with the network it means
 * (`198.18.5.0/24`), as the kernel refuses a route to it — the config fails at load, not at every reconcile.
 */
export function cidr() {
  return z
    .string()
    .refine((s) => parseCIDR(s) !== undefined, {
      error: (iss) => `expected a CIDR like "10.4.0.0/24" or "fd00::/64", got ${describeValue(iss.input)}`,
      abort: true,
    })
    .refine((s) => hostBitsClear(s), {
      error: (iss) => `host bits set in ${describeValue(iss.input)}: the network is ${canonicalNetwork(String(iss.input)) ?? '?'}`,
    });
}

/** Whether a CIDR's address is its network's first address (`10.4.0.0/24`, not `10.4.0.1/24`). */
function hostBitsClear(text: string): boolean {
  const slash = text.lastIndexOf('/');
  return canonicalNetwork(text) === `${canonicalIP(text.slice(0, slash)) ?? ''}/${String(Number(text.slice(slash + 1)))}`;
}

export { z };
