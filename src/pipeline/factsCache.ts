import { approxFactsBytes, type RequestFacts } from '../correlate/requestFacts.ts';

/**
 * What enrichment needs of each spooled request, kept from admission until the request is sent, so
 * it is not read back and decoded again. Bounded by an estimate of the bytes held: past the bound a
 * request is simply not kept, and is decoded from the spool when its turn comes.
 */
export class FactsCache {
  private readonly facts = new Map<number, RequestFacts>();
  private heldBytes = 0;

  constructor(private readonly maxBytes: number) {}

  get bytes(): number {
    return this.heldBytes;
  }

  get size(): number {
    return this.facts.size;
  }

  /**
   * Whether facts of a request with `spans` spans could be kept: at most about 1 KB a span. Under a backlog
   * the cache is full, and facts taken only to be dropped are garbage the collector has to promote.
   */
  hasRoomFor(spans: number): boolean {
    return this.heldBytes + approxFactsBytes(spans) <= this.maxBytes;
  }

  /** Keeps the facts of spool row `id` if they fit; a row already kept is never counted twice. */
  remember(id: number, facts: RequestFacts): void {
    if (this.facts.has(id) || this.heldBytes + facts.approxBytes > this.maxBytes) return;
    this.facts.set(id, facts);
    this.heldBytes += facts.approxBytes;
  }

  /** The kept facts, or `decode()`'s, which are then kept if they fit. */
  get(id: number, decode: () => RequestFacts): RequestFacts {
    const cached = this.facts.get(id);
    if (cached) return cached;
    const facts = decode();
    this.remember(id, facts);
    return facts;
  }

  forget(id: number): void {
    const f = this.facts.get(id);
    if (!f) return;
    this.heldBytes -= f.approxBytes;
    this.facts.delete(id);
  }
}
