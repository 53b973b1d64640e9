/**
 * Every error weft raises on purpose carries a stable `code`; each code is listed in docs/errors.md
 * (a test keeps the two in step).
 */
export const ERROR_CODES = {
  /** The config file could not be read, parsed or validated. */
  WEFT_CONFIG_INVALID: 'config is invalid',
  /** A plugin key names no built-in plugin and sets no `module:`. */
  WEFT_PLUGIN_UNKNOWN: 'unknown plugin',
  /** The plugin's module could not be imported. */
  WEFT_PLUGIN_IMPORT_FAILED: 'plugin module failed to import',
  /** The module imported, but exports no plugin made by `definePlugin`. */
  WEFT_PLUGIN_INVALID: 'module is not a weft plugin',
  /** The plugin declares an API version this core does not speak. */
  WEFT_PLUGIN_API_VERSION: 'plugin API version mismatch',
  /** The module's plugin has another name than the config key it was loaded for. */
  WEFT_PLUGIN_NAME_MISMATCH: 'plugin name differs from its config key',
  /** The plugin's `setup` threw. */
  WEFT_PLUGIN_SETUP_FAILED: 'plugin setup failed',
  /** The plugin's `setup` did not finish within `setupTimeout`. */
  WEFT_PLUGIN_SETUP_TIMEOUT: 'plugin setup timed out',
  /** A reconcile did not finish within its timeout and was aborted. */
  WEFT_RECONCILE_TIMEOUT: 'reconcile timed out',
  /** A plugin registered an HTTP route or metric that clashes with another. */
  WEFT_REGISTRATION_CONFLICT: 'conflicting registration',
  /** A desired state held a bad value (interface name, CIDR, label, ...); nothing was applied. */
  WEFT_KERNEL_INPUT: 'invalid desired state',
  /** A kernel command failed; the error names the object and the kernel's answer. */
  WEFT_KERNEL_APPLY: 'kernel change failed',
  /** The kernel or machine lacks what a plugin needs (a link kind, MPLS, nftables, a tool). */
  WEFT_KERNEL_UNSUPPORTED: 'kernel lacks a capability',
  /** Two plugins declared overlapping kernel ownership (link prefix, route protocol, rule priorities). */
  WEFT_KERNEL_OWNERSHIP: 'overlapping kernel ownership',
  /** A service a plugin asked for is not available in this agent. */
  WEFT_SERVICE_UNAVAILABLE: 'service unavailable',
} as const;

/** A documented weft error code. */
export type WeftErrorCode = keyof typeof ERROR_CODES;

/** The one error class weft throws on purpose: a stable code, a message that says what and where, and the cause. */
export class WeftError extends Error {
  override readonly name = 'WeftError';
  readonly code: WeftErrorCode;

  constructor(code: WeftErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Thrown (or returned via `Promise.reject`) from a reconcile to say "retrying will not help": the scheduler counts
 * it as `result="terminal"` and does not retry until the next trigger.
 */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';
}

/** Codes that retrying cannot help: the same input fails the same way until the plugin computes another. */
const TERMINAL_CODES: ReadonlySet<WeftErrorCode> = new Set<WeftErrorCode>(['WEFT_KERNEL_INPUT']);

/**
 * Whether retrying cannot help: a {@link TerminalError}, or a {@link WeftError} that says the input itself is bad
 * (`WEFT_KERNEL_INPUT`: a desired state the driver refused before applying anything). The scheduler then waits for the
 * next trigger (a cluster or config change, the periodic resync) instead of retrying with backoff.
 */
export function isTerminal(err: unknown): boolean {
  return err instanceof TerminalError || (err instanceof WeftError && TERMINAL_CODES.has(err.code));
}

/** True when `err` is a {@link WeftError} with the given code. */
export function isWeftError(err: unknown, code?: WeftErrorCode): err is WeftError {
  return err instanceof WeftError && (code === undefined || err.code === code);
}

function withCode(err: Error): string {
  const code = (err as { code?: unknown }).code;
  // A system or library code (ECONNREFUSED, UND_ERR_CONNECT_TIMEOUT, DEPTH_ZERO_SELF_SIGNED_CERT); weft's own codes
  // are for programs, not for the message.
  return typeof code === 'string' && !code.startsWith('WEFT_') && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}

/** A one-line description of any thrown value, with its causes, for logs and CLI output. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    // A generic message ("fetch failed") says nothing without its cause (ECONNREFUSED, a TLS or timeout error):
    // the causes follow, each once, with their error code where the message lacks it.
    let text = withCode(err);
    let cause: unknown = err.cause;
    for (let depth = 0; cause !== undefined && cause !== null && depth < 4; depth++) {
      const part = cause instanceof Error ? withCode(cause) : typeof cause === 'string' ? cause : undefined;
      if (part === undefined) break;
      if (!text.includes(part)) text += `: ${part}`;
      cause = cause instanceof Error ? cause.cause : undefined;
    }
    return text;
  }
  if (typeof err === 'string') return err;
  if (err === null || typeof err !== 'object') return String(err);
  // Something thrown that is not an Error: say what it is rather than "[object Object]".
  const message = (err as { message?: unknown }).message;
  if (typeof message === 'string') return message;
  try {
    const text = JSON.stringify(err);
    return `a non-Error was thrown: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`;
  } catch {
    return `a non-Error was thrown: ${Object.prototype.toString.call(err)}`;
  }
}
