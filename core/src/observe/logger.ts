import { createRequire } from 'node:module';
import { BUNDLE } from '../build-info.js';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/** Log settings as the config gives them. */
export interface LogSettings {
  readonly level: string;
  readonly format: 'auto' | 'json' | 'pretty';
}

/**
 * Whether pino-pretty is installed (it is a dev dependency; production images log JSON). Never in the bundle: pino
 * runs a transport in a worker thread from its own files, which a bundle does not carry.
 */
function prettyAvailable(): boolean {
  if (BUNDLE) return false;
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * The agent's root logger: JSON lines, or pretty output when asked for (or, with `auto`, when stdout is a
 * terminal and pino-pretty is installed). `destination` is for tests.
 */
export function createLogger(settings: LogSettings, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    base: { svc: 'weft' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Secrets must never reach a log line, whatever a plugin passes along.
    redact: { paths: ['privateKey', '*.privateKey', 'presharedKey', '*.presharedKey'], censor: '[redacted]' },
  };
  if (destination) return pino(options, destination);
  const pretty = settings.format === 'pretty' || (settings.format === 'auto' && process.stdout.isTTY === true);
  if (pretty && prettyAvailable()) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'svc' } } });
  }
  return pino(options);
}
