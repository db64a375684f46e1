"""Sends what vLLM's Python OTLP trace exporters put on the wire, and prints what happened as JSON.

vLLM exports its `llm_request` spans with opentelemetry-exporter-otlp: OTLP/gRPC by default,
OTLP/HTTP protobuf with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf. This script does what
those exporters do, with the same parts:

- the request is built from the real opentelemetry-proto classes (fixtures/python, 1.45.0) and
  serialized by the real protobuf runtime;
- gRPC goes through grpcio with the same call the exporter's TraceServiceStub makes
  (channel compression for gzip, metadata for headers);
- HTTP goes through a requests Session with the exporter's headers, the body gzip-compressed by
  gzip.GzipFile or deflate-compressed by zlib.compress, as the exporter does.

The Python SDK itself is not run: its encoder and batch processor change what is inside the
message, not how it travels, and the span below carries what that encoder writes for a vLLM span
(flags with the has-is-remote bits, a remote parent, the 15 vLLM attributes).

usage: otlp_client.py grpc|http HOST:PORT none|gzip|deflate TAG
"""

import base64
import gzip
import io
import json
import sys
import zlib

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
from opentelemetry.proto.common.v1 import common_pb2 as common
from opentelemetry.proto.resource.v1 import resource_pb2 as resource
from opentelemetry.proto.trace.v1 import trace_pb2 as trace

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
USER_AGENT = "OTel-OTLP-Exporter-Python/1.45.0"
# SpanFlags: trace flags (sampled) | CONTEXT_HAS_IS_REMOTE | CONTEXT_IS_REMOTE, as the SDK encoder
# writes them for a span whose parent came in a traceparent header.
FLAGS_REMOTE_PARENT = 0x01 | 0x100 | 0x200
FLAGS_LOCAL_PARENT = 0x01 | 0x100


def value(v):
    if isinstance(v, bool):
        return common.AnyValue(bool_value=v)
    if isinstance(v, int):
        return common.AnyValue(int_value=v)
    if isinstance(v, float):
        return common.AnyValue(double_value=v)
    if isinstance(v, bytes):
        return common.AnyValue(bytes_value=v)
    if isinstance(v, list):
        return common.AnyValue(array_value=common.ArrayValue(values=[value(x) for x in v]))
    return common.AnyValue(string_value=v)


def attrs(d):
    return [common.KeyValue(key=k, value=value(v)) for k, v in d.items()]


def build(tag, n):
    """A request as vLLM's exporter batches it: n llm_request spans, one trace each,
    and a gateway span of the first trace."""
    seed = zlib.crc32(tag.encode())
    base_ns = 1_764_000_000_000_000_000 + (seed % 1_000_000) * 1_000_000_000
    spans = []
    for i in range(n):
        trace_id = (seed.to_bytes(4, "big") + i.to_bytes(4, "big")) * 2
        spans.append(
            trace.Span(
                trace_id=trace_id,
                span_id=(seed + i).to_bytes(8, "big"),
                parent_span_id=(seed + 1000 + i).to_bytes(8, "big"),
                trace_state="vendor=py" if i == 0 else "",
                flags=FLAGS_REMOTE_PARENT,
                name="llm_request",
                kind=trace.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=base_ns + i * 1_000_000,
                end_time_unix_nano=base_ns + i * 1_000_000 + 1_234_567_891,
                attributes=attrs(
                    {
                        "gen_ai.response.model": "meta-llama/Llama-3.1-8B-Instruct",
                        "gen_ai.request.id": f"cmpl-{tag}-{i}",
                        "gen_ai.request.temperature": 0.7,
                        "gen_ai.request.top_p": 0.95,
                        "gen_ai.request.max_tokens": 512,
                        "gen_ai.request.n": 1,
                        "gen_ai.usage.num_sequences": 1,
                        "gen_ai.usage.prompt_tokens": 800 + i,
                        "gen_ai.usage.completion_tokens": 64 + i,
                        "gen_ai.latency.time_in_queue": 0.004,
                        "gen_ai.latency.time_to_first_token": 0.081,
                        "gen_ai.latency.e2e": 1.234567891,
                        "gen_ai.latency.time_in_scheduler": 0.0021,
                        "gen_ai.latency.time_in_model_forward": 0.9,
                        "gen_ai.latency.time_in_model_execute": 0.95,
                    }
                ),
                status=trace.Status(code=trace.Status.STATUS_CODE_UNSET),
            )
        )
    # What a gateway in the same process would add: a client span naming the tenant, with the
    # value types the SDK can carry (arrays, bytes) and an event and a link.
    spans.append(
        trace.Span(
            trace_id=spans[0].trace_id,
            span_id=(seed + 5000).to_bytes(8, "big"),
            flags=FLAGS_LOCAL_PARENT,
            name="gateway /v1/chat/completions",
            kind=trace.Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=base_ns - 1_000_000,
            end_time_unix_nano=base_ns + 1_300_000_000,
            attributes=attrs({
                "tenant.id": f"team-{tag}",
                "http.request.header.x": ["a", "b"],
                "retry.backoff": [0.5, 1.5],
                "blob": b"\x00\xff\x10",
            }),
            events=[trace.Span.Event(time_unix_nano=base_ns, name="retry", attributes=attrs({"attempt": 2}))],
            links=[trace.Span.Link(
                trace_id=b"\x11" * 16, span_id=b"\x22" * 8, trace_state="l=1",
                attributes=attrs({"link.kind": "follows"}), flags=0x101,
            )],
            status=trace.Status(code=trace.Status.STATUS_CODE_ERROR, message="upstream 503"),
            dropped_attributes_count=1,
        )
    )
    return ts.ExportTraceServiceRequest(
        resource_spans=[
            trace.ResourceSpans(
                resource=resource.Resource(
                    attributes=attrs(
                        {
                            "telemetry.sdk.language": "python",
                            "telemetry.sdk.name": "opentelemetry",
                            "telemetry.sdk.version": "1.45.0",
                            "service.name": "vllm",
                            "service.instance.id": "vllm-py",
                        }
                    )
                ),
                scope_spans=[trace.ScopeSpans(scope=common.InstrumentationScope(name="vllm.llm_engine"), spans=spans)],
            )
        ]
    )


def send_grpc(endpoint, compression, body):
    import grpc

    # The exporter's channel: insecure_channel(endpoint, compression=...); gzip is the only
    # compression it offers over gRPC.
    comp = grpc.Compression.Gzip if compression == "gzip" else grpc.Compression.NoCompression
    with grpc.insecure_channel(endpoint, compression=comp) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            raw, call = export.with_call(body, metadata=(("x-tenant", "py"),), timeout=10)
            return {"code": call.code().value[0], "response": base64.b64encode(raw).decode()}
        except grpc.RpcError as err:
            return {"code": err.code().value[0], "details": err.details()}


def send_http(endpoint, compression, body):
    import requests

    session = requests.Session()
    session.headers.update({"Content-Type": "application/x-protobuf", "User-Agent": USER_AGENT})
    data = body
    if compression == "gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="w") as g:
            g.write(body)
        data = buf.getvalue()
        session.headers["Content-Encoding"] = "gzip"
    elif compression == "deflate":
        data = zlib.compress(body)
        session.headers["Content-Encoding"] = "deflate"
    r = session.post(f"http://{endpoint}/v1/traces", data=data, timeout=10)
    return {
        "code": r.status_code,
        "content_type": r.headers.get("Content-Type"),
        "response": base64.b64encode(r.content).decode(),
    }


def main():
    transport, endpoint, compression, tag = sys.argv[1:5]
    req = build(tag, 3)
    body = req.SerializeToString()
    out = (send_grpc if transport == "grpc" else send_http)(endpoint, compression, body)
    if out.get("response") is not None:
        resp = ts.ExportTraceServiceResponse.FromString(base64.b64decode(out["response"]))
        out["rejected_spans"] = resp.partial_success.rejected_spans
    out["request"] = base64.b64encode(body).decode()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
