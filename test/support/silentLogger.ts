import { pino } from 'pino';
import type { Logger } from '../../src/telemetry/logger.ts';

/** A real pino logger whose lines are kept for assertions instead of printed. */
export function memoryLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}
