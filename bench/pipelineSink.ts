// Grandchild of the pipeline benchmark: the downstream OTLP/gRPC receiver in a process of its own.
// It counts spans by walking the wire format instead of decoding every forwarded request (which
// cost more CPU than cachelens itself), so on a small machine the load is not starved by it.
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { readVarint, skipField, WIRE_LEN } from '../src/otlp/wire.ts';
import { TRACE_SERVICE } from '../src/pipeline/receivers/grpcReceiver.ts';

/** Spans in an ExportTraceServiceRequest: field 1 → 2 → 2 (resource_spans → scope_spans → spans). */
function countSpans(buf: Uint8Array, start = 0, end = buf.length, level = 0): number {
  let n = 0;
  let pos = start;
  while (pos < end) {
    const [key, afterKey] = readVarint(buf, pos);
    const next = skipField(buf, afterKey, key & 7);
    if ((key & 7) === WIRE_LEN && key >>> 3 === (level === 0 ? 1 : 2)) {
      if (level === 2) n++;
      else n += countSpans(buf, readVarint(buf, afterKey)[1], next, level + 1);
    }
    pos = next;
  }
  return n;
}

let received = 0;
let reported = 0;
const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
server.addService(TRACE_SERVICE, {
  Export: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
    received += countSpans(call.request);
    cb(null, Buffer.alloc(0));
  },
});
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
);
// Batched counts: one IPC message per 20 ms at most.
setInterval(() => {
  if (received !== reported) process.send!({ received: (reported = received) });
}, 20).unref();
process.send!({ sinkPort: port });
process.on('message', () => {
  server.forceShutdown();
  process.exit(0);
});
