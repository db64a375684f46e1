import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Loaded once from the hand-written .proto; protobufjs generates the decoders at first use.
const PROTO_PATH = fileURLToPath(new URL('./otlp.proto', import.meta.url));
// protobufjs stops at 100 nested messages (protoc's default); one kvlist level is three messages
// (AnyValue → KeyValueList → KeyValue), so that would refuse valid OTLP with kvlists 34 deep. The
// Collector's Go decoder allows 10,000. 1,000 admits kvlists over 300 deep and still bounds the stack.
protobuf.util.recursionLimit = 1000;
protobuf.Reader.recursionLimit = 1000;
const root = protobuf.parse(readFileSync(PROTO_PATH, 'utf8')).root;
const type = (name: string): protobuf.Type => root.lookupType(`opentelemetry.proto.${name}`);

export const ExportTraceServiceRequest = type('ExportTraceServiceRequest');
export const ExportTraceServiceResponse = type('ExportTraceServiceResponse');
export const RpcStatus = type('RpcStatus');
export const RetryInfo = type('RetryInfo');
export const BadRequest = type('BadRequest');

/** protobufjs decodes 64-bit fields as Long when the long package is present (it is a protobufjs dependency). */
export interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}

export interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: LongLike | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
  bytesValue?: Uint8Array;
  value?: string; // which oneof member is set (protobufjs virtual oneof property)
}
export interface KeyValue {
  key: string;
  value?: AnyValue;
}
export interface OtlpEvent {
  timeUnixNano: LongLike | number;
  name: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
}
export interface OtlpLink {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceState: string;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  flags: number;
}
export interface OtlpSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  traceState: string;
  parentSpanId: Uint8Array;
  flags: number;
  name: string;
  kind: number;
  startTimeUnixNano: LongLike | number;
  endTimeUnixNano: LongLike | number;
  attributes: KeyValue[];
  droppedAttributesCount: number;
  events: OtlpEvent[];
  droppedEventsCount: number;
  links: OtlpLink[];
  droppedLinksCount: number;
  status?: { message: string; code: number };
}
export interface OtlpScopeSpans {
  scope?: { name: string; version: string; attributes: KeyValue[]; droppedAttributesCount: number };
  spans: OtlpSpan[];
  schemaUrl: string;
}
export interface OtlpResourceSpans {
  resource?: { attributes: KeyValue[]; droppedAttributesCount: number };
  scopeSpans: OtlpScopeSpans[];
  schemaUrl: string;
}
export interface OtlpTraceRequest {
  resourceSpans: OtlpResourceSpans[];
}
