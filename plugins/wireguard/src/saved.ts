import { canonicalIP, generateWireGuardKeyPair, isWireGuardKey, type Logger, type PluginState, TerminalError, wireGuardPublicKey } from '@weft/core';

/** The private key in the state directory (mode 0600), made on first start and kept across restarts. */
export async function loadKey(state: PluginState, dryRun: boolean): Promise<{ privateKey: string; publicKey: string; created: boolean }> {
  const saved = (await state.readFile('private.key', { secret: true }))?.toString('utf8').trim();
  if (saved !== undefined) {
    if (!isWireGuardKey(saved)) throw new TerminalError(`${state.dir}/private.key is not a WireGuard private key (base64 of 32 bytes); move it away to make a new one`);
    return { privateKey: saved, publicKey: wireGuardPublicKey(saved), created: false };
  }
  const pair = generateWireGuardKeyPair();
  if (!dryRun) await state.writeFile('private.key', `${pair.privateKey}\n`, { mode: 0o600 });
  return { ...pair, created: true };
}

/** The overlay address this node chose before (`overlay.json`), kept across restarts; none when unreadable. */
export async function loadOverlay(state: PluginState, logger: Logger): Promise<{ ip4: string; since: number } | undefined> {
  const saved = (await state.readFile('overlay.json'))?.toString('utf8');
  try {
    const o = saved ? (JSON.parse(saved) as { ip4?: unknown; since?: unknown }) : undefined;
    if (o && typeof o.ip4 === 'string' && canonicalIP(o.ip4) !== undefined && typeof o.since === 'number') return { ip4: o.ip4, since: o.since };
  } catch {
    logger.warn({ file: `${state.dir}/overlay.json` }, 'unreadable overlay state; choosing the overlay address again');
  }
  return undefined;
}
