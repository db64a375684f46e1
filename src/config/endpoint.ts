/** A listen endpoint: "127.0.0.1:4317", "[::1]:4317", "0.0.0.0:4318", ":4318" (every interface). */
export function parseEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(endpoint.trim());
  if (!m) throw new Error(`listen endpoint ${JSON.stringify(endpoint)} is not host:port (e.g. 127.0.0.1:4317)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`listen endpoint ${JSON.stringify(endpoint)}: port out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
