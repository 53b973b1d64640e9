import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { isWireGuardKey } from './normalize.js';

/** The PKCS#8 DER header of an X25519 private key; the 32 key bytes follow it. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

const b64 = (b64url: string) => Buffer.from(b64url, 'base64url').toString('base64');

/** A new WireGuard (X25519) key pair, base64 as `wg genkey | wg pubkey` prints them. Node's crypto; no process. */
export function generateWireGuardKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey: b64(jwk.d as string), publicKey: b64(jwk.x as string) };
}

/** The public key of a base64 WireGuard private key (`wg pubkey`). */
export function wireGuardPublicKey(privateKey: string): string {
  if (!isWireGuardKey(privateKey)) throw new TypeError('not a WireGuard private key (base64 of 32 bytes)');
  const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKey, 'base64')]);
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return b64(createPublicKey(key).export({ format: 'jwk' }).x as string);
}
