import { createServiceRef } from './services.js';

/** A node's addresses on an overlay. */
export interface OverlayAddresses {
  readonly ip4?: string;
  readonly ip6?: string;
}

/**
 * An overlay network between the nodes, as the plugin that makes it offers it to others (the wireguard plugin's
 * mesh): the interface that carries it, and each node's addresses on it — as that plugin planned them, so checked
 * against its address plan, never read raw from another node's annotations.
 */
export interface OverlayService {
  /** The interface the overlay runs on (`weft-wg0`). */
  readonly interface: string;
  /** This node's addresses on the overlay; undefined before the provider's first reconcile. */
  self(): OverlayAddresses | undefined;
  /** Another node's addresses on the overlay; undefined for a node the overlay does not (yet) reach. */
  node(name: string): OverlayAddresses | undefined;
  /** Called after a reconcile of the provider changed any of the above; returns the function that unsubscribes. */
  onChange(listener: () => void): () => void;
}

/** The overlay service: provided by the plugin that makes an overlay (`provides: [overlayServiceRef]`). */
export const overlayServiceRef = createServiceRef<OverlayService>('weft.overlay');
