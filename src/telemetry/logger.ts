import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

// Secrets never reach a log line, whichever component logs the object.
const REDACT = [
  '*.bearer_token',
  '*.password',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  'headers.Authorization',
];

/** JSON lines on stderr, so stdout stays free for command output (tables, JSON, CSV). */
export function createLogger(level: string, destination: NodeJS.WritableStream | number = 2): Logger {
  return pino(
    {
      level,
      base: { service: 'cachelens' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination,
  );
}
