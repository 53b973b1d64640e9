import type { Clock, ClockTimer } from '../api/services.js';

/** The system's clock: `Date.now()`, `performance.now()` and Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer: ClockTimer | undefined) => clearTimeout(timer as NodeJS.Timeout | undefined),
};
