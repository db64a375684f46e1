import { joined, removeSpans } from '../otlp/splice.ts';
import type { Spool, SpoolRow } from './spool.ts';

/** What the caller made of one ready row: part of the batch, not ready until a time, or gone (dropped). */
export type Take<T> = { item: T } | { waitUntilMs: number } | { gone: true };

export interface Batch<T> {
  rows: SpoolRow[];
  items: T[];
  spans: number;
}

/**
 * Reads ready rows from the spool and groups them into downstream requests of at most
 * `maxBatchSpans` spans (the Collector's batcher over its persistent queue). Rows being sent are
 * not read again; rows downstream refused as part of a merged request go alone from then on, so one
 * client's bad span cannot take another client's spans with it.
 */
export class Batcher {
  private readonly inFlight = new Set<number>();
  private readonly solo = new Set<number>();

  constructor(
    private readonly spool: Spool,
    private readonly maxBatchSpans: number,
  ) {}

  get inFlightRows(): number {
    return this.inFlight.size;
  }

  /**
   * The next group of ready rows, each passed through `take`; undefined when no row is ready. A
   * group may be empty when every row it read had to wait or was dropped: call again. Rows that
   * wait are postponed in one transaction (a commit per row cost more than the rows themselves).
   */
  next<T>(nowMs: number, take: (row: SpoolRow) => Take<T>): Batch<T> | undefined {
    const rows = this.spool.ready(nowMs, 64 + this.inFlight.size).filter((r) => !this.inFlight.has(r.id));
    if (!rows.length) return undefined;
    const batch: Batch<T> = { rows: [], items: [], spans: 0 };
    const waiting: Array<[number, number]> = [];
    for (const row of rows) {
      const first = batch.rows[0];
      if (first && (this.solo.has(row.id) || this.solo.has(first.id))) break;
      if (first && batch.spans + row.spans > this.maxBatchSpans) break;
      const taken = take(row);
      if ('waitUntilMs' in taken) waiting.push([row.id, taken.waitUntilMs]);
      if (!('item' in taken)) continue;
      batch.rows.push(row);
      batch.items.push(taken.item);
      batch.spans += row.spans;
    }
    this.spool.postponeEach(waiting, false);
    for (const r of batch.rows) this.inFlight.add(r.id);
    return batch;
  }

  /** The rows' send is over (acknowledged, to be retried, or refused): they may be read again. */
  settled(ids: readonly number[]): void {
    for (const id of ids) this.inFlight.delete(id);
  }

  forget(ids: readonly number[]): void {
    for (const id of ids) {
      this.solo.delete(id);
      this.inFlight.delete(id);
    }
  }

  /**
   * Downstream refused a request for good (the Collector refuses a whole request for one bad
   * span). A merged request is split back into its rows, a lone row into halves in the spool,
   * until what fails fails alone. Returns the row that must be dropped, or undefined.
   */
  refused(rows: readonly SpoolRow[]): { drop?: SpoolRow; splitIds?: number[] } {
    if (rows.length > 1) {
      for (const r of rows) this.solo.add(r.id);
      return {};
    }
    const row = rows[0]!;
    this.solo.delete(row.id);
    const body = row.spans > 1 ? this.spool.body(row.id) : undefined;
    if (!body) return { drop: row };
    const mid = Math.floor(row.spans / 2);
    const half = (from: number, to: number) => {
      const drop = new Set<number>();
      for (let i = 0; i < row.spans; i++) if (i < from || i >= to) drop.add(i);
      return { body: joined(removeSpans(body, drop)), spans: to - from };
    };
    const splitIds = this.spool.split(row, [half(0, mid), half(mid, row.spans)]);
    for (const id of splitIds) this.solo.add(id);
    return { splitIds };
  }
}
