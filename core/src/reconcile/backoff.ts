/**
 * The delay before retry number `n` (1-based) — of a reconcile, a plugin's setup, a watch, an annotation write:
 * `initial`·2^(n−1), capped at `max`, then "equal jitter", a uniform draw in [½, 1) of that, so that the agents of
 * every node, failing together (an API outage), do not retry together. `random` in [0, 1); tests fix it.
 */
export function backoffDelay(n: number, initial: number, max: number, random: () => number = Math.random): number {
  const base = Math.min(max, initial * 2 ** Math.min(Math.max(1, n) - 1, 52));
  return Math.round(base * (0.5 + 0.5 * random()));
}
