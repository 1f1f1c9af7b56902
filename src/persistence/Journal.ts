/**
 * The usage journal: a JetStream stream of {@link JournalEntry} messages, one per
 * report or lease expiry, written before the usage is applied in memory, and of
 * {@link ResetEntry} messages, one per operator reset (on `<p>.journal.admin.<scope>`).
 *
 * Subjects are `<p>.journal.<encodeSubjectToken(key)>`: one subject per API key, so
 * that a deployment partitioned by key can replay one key's partition alone
 * (a consumer filtered on `<p>.journal.<token>`). Entries carry a JetStream message
 * id per lease (see {@link entryMsgID}): a repeat within the duplicate window is
 * stored once.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { Logger } from "../log.js";
import { encodeSubjectToken } from "../protocol/subjectToken.js";
import { type LogEntry, type UsageJournal, parseEntry } from "./entry.js";

/** Defaults of {@link JournalOptions}. */
export const DEFAULT_JOURNAL = {
  stream: "SLUICE_JOURNAL",
  /** Entries older than this are dropped by the stream, ms (7 days). */
  maxAgeMs: 7 * 24 * 3600_000,
  /** JetStream's duplicate window for message ids, ms. */
  duplicateWindowMs: 2 * 60_000,
  /** How long an append waits for its PubAck, ms. */
  timeoutMs: 5_000,
} as const;

export interface JournalOptions {
  nc: NatsConnection;
  /** Subject prefix (`<p>`). */
  prefix: string;
  stream?: string;
  maxAgeMs?: number;
  duplicateWindowMs?: number;
  timeoutMs?: number;
  logger?: Logger;
}

const NANOS_PER_MS = 1_000_000;

export class Journal implements UsageJournal {
  readonly stream: string;
  private readonly tokens = new Map<string, string>();

  private constructor(
    private readonly opts: JournalOptions,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {
    this.stream = opts.stream ?? DEFAULT_JOURNAL.stream;
  }

  /** Open the journal, creating its stream when missing. */
  static async open(opts: JournalOptions): Promise<Journal> {
    const timeout = opts.timeoutMs ?? DEFAULT_JOURNAL.timeoutMs;
    const jsm = await jetstreamManager(opts.nc, { timeout });
    const j = new Journal(opts, jetstream(opts.nc, { timeout }), jsm);
    await j.ensureStream();
    return j;
  }

  private async ensureStream(): Promise<void> {
    const subjects = [`${this.opts.prefix}.journal.>`];
    try {
      const info = await this.jsm.streams.info(this.stream);
      if (!info.config.subjects?.includes(subjects[0]!)) {
        // Every append would fail (no stream takes the subject): say so at start, not on every report.
        throw new Error(
          `journal stream ${this.stream} exists for ${JSON.stringify(info.config.subjects ?? [])}, not ${subjects[0]}: it belongs to another prefix; set SLUICE_JOURNAL_STREAM (and SLUICE_STATE_BUCKET) to names of this prefix's own`,
        );
      }
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    }
    await this.jsm.streams.add({
      name: this.stream,
      subjects,
      storage: StorageType.File,
      max_age: (this.opts.maxAgeMs ?? DEFAULT_JOURNAL.maxAgeMs) * NANOS_PER_MS,
      duplicate_window: (this.opts.duplicateWindowMs ?? DEFAULT_JOURNAL.duplicateWindowMs) * NANOS_PER_MS,
    });
    this.opts.logger?.info({ stream: this.stream, subjects }, "journal stream created");
  }

  /** The subject of `key`'s entries. */
  subjectOf(key: string): string {
    let t = this.tokens.get(key);
    if (t === undefined) {
      t = encodeSubjectToken(key);
      if (this.tokens.size < 100_000) this.tokens.set(key, t);
    }
    return `${this.opts.prefix}.journal.${t}`;
  }

  async append(entry: LogEntry, msgID: string | undefined): Promise<{ seq: number; duplicate: boolean }> {
    const subject = entry.type === "reset" ? `${this.opts.prefix}.journal.admin.${encodeSubjectToken(entry.scopes[0])}` : this.subjectOf(entry.key);
    const ack = await this.js.publish(subject, JSON.stringify(entry), msgID !== undefined ? { msgID } : undefined);
    return { seq: ack.seq, duplicate: ack.duplicate };
  }

  /** First and last sequence in the stream now (last 0: empty). */
  async bounds(): Promise<{ first: number; last: number }> {
    const info = await this.jsm.streams.info(this.stream);
    return { first: info.state.first_seq, last: info.state.last_seq };
  }

  /**
   * Read the entries with sequence `from`..`to` in order (an ordered consumer), calling
   * `onEntry` for each. Returns how many were read. Messages that are not entries are skipped.
   */
  async replay(from: number, to: number, onEntry: (seq: number, entry: LogEntry) => void): Promise<number> {
    if (to < from || to === 0) return 0;
    const consumer = await this.js.consumers.get(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, from),
    });
    let n = 0;
    const msgs = await consumer.consume({ max_messages: 1000 });
    try {
      for await (const m of msgs) {
        if (m.seq > to) break;
        let entry: LogEntry | undefined;
        try {
          entry = parseEntry(m.json());
        } catch {
          entry = undefined;
        }
        if (entry) {
          onEntry(m.seq, entry);
          n++;
        } else this.opts.logger?.warn({ seq: m.seq }, "journal message is not an entry; skipped");
        if (m.seq >= to) break;
      }
    } finally {
      await msgs.close();
      await consumer.delete().catch(() => undefined);
    }
    return n;
  }
}
