// tsyringe needs the Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import { type DependencyContainer, container as globalContainer } from 'tsyringe';
import { WeftError } from '../api/errors.js';
import type { ServiceRef } from '../api/services.js';

export type { DependencyContainer };

/** A fresh root container for one agent, so that agents in one process (tests) never share services. */
export function createRootContainer(): DependencyContainer {
  return globalContainer.createChildContainer();
}

/** Registers a ready-made value for a service ref. */
export function provide<T>(container: DependencyContainer, ref: ServiceRef<T>, value: T): void {
  container.register<T>(ref.token, { useValue: value });
}

/** Resolves a service ref, naming the service and the consumer when it is missing. */
export function resolveRef<T>(container: DependencyContainer, ref: ServiceRef<T>, consumer: string): T {
  if (!container.isRegistered(ref.token, true)) {
    throw new WeftError('WEFT_SERVICE_UNAVAILABLE', `${consumer}: service ${ref.id} is not available in this agent`);
  }
  return container.resolve<T>(ref.token);
}
