import type { ConfigOf, ObjectSpec } from '../spec.ts';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const logSpec = {
  kind: 'object',
  fields: {
    level: {
      kind: 'enum',
      values: LOG_LEVELS,
      default: 'info',
      env: 'CACHELENS_LOG_LEVEL',
      doc: 'Log level of the JSON logs on stderr.',
    },
  },
} as const satisfies ObjectSpec;

export type LogConfig = ConfigOf<typeof logSpec>;
