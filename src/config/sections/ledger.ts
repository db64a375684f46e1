import type { ConfigOf, ObjectSpec } from '../spec.ts';

export const ledgerSpec = {
  kind: 'object',
  fields: {
    tenant_attributes: {
      kind: 'stringList',
      default: ['tenant.id', 'enduser.id'],
      doc:
        "Attribute keys recorded as the request's tenant, from the span, " +
        'its resource or any span of the same trace.',
    },
  },
} as const satisfies ObjectSpec;

export type LedgerConfig = ConfigOf<typeof ledgerSpec>;
