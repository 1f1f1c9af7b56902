/**
 * The live feed of decisions, `<p>.decisions.<decision>.<model>`, as an RxJS
 * Observable that is also an async iterable. Each subscription, and each
 * iteration, is its own NATS subscription, opened when it starts and closed on
 * unsubscribe or when the loop ends (`break`, `return`, a throw).
 */
import type { NatsConnection, Subscription as NatsSubscription } from "@nats-io/transport-node";
import { Observable } from "rxjs";
import type { DecisionEvent } from "../protocol/decision.js";
import { encodeSubjectToken } from "../protocol/subjectToken.js";

/** Which decisions a feed carries; both fields narrow the subscription's subject. */
export interface DecisionFilter {
  /** Only admissions or only rejections. Default both. */
  decision?: "admit" | "reject";
  /** Only decisions for this model (raw name; encoded for the subject). Default all. */
  model?: string;
}

/** The subject that carries the decisions `filter` selects. */
export function decisionSubject(prefix: string, filter: DecisionFilter = {}): string {
  const model = filter.model === undefined ? "*" : encodeSubjectToken(filter.model);
  return `${prefix}.decisions.${filter.decision ?? "*"}.${model}`;
}

/**
 * Decisions as they are made. Subscribe as an Observable (`feed.subscribe(…)`,
 * `feed.pipe(…)`) or iterate (`for await (const ev of feed)`). A message that is
 * not a JSON object is skipped. The feed errors if the NATS subscription does
 * (for example a permission violation), and completes when the connection
 * closes.
 */
export class DecisionFeed extends Observable<DecisionEvent> {
  /** The NATS subject of this feed (wildcards included). */
  readonly subject: string;

  /** A feed on `nc` under `prefix`; nothing is subscribed until it is subscribed to or iterated. */
  constructor(
    private readonly nc: NatsConnection,
    prefix: string,
    filter: DecisionFilter = {},
  ) {
    const subject = decisionSubject(prefix, filter);
    super((subscriber) => {
      const sub = nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return subscriber.error(err);
          const ev = parseEvent(msg.data);
          if (ev) subscriber.next(ev);
        },
      });
      void sub.closed.then(
        () => subscriber.complete(),
        (e: unknown) => subscriber.error(e),
      );
      return () => sub.unsubscribe();
    });
    this.subject = subject;
  }

  /**
   * Resolves once the NATS server has every subscription this feed made so far,
   * so that no decision made after it is missed.
   */
  ready(): Promise<void> {
    return this.nc.flush();
  }

  /** Iterate the decisions; the NATS subscription closes when the loop ends. */
  [Symbol.asyncIterator](): AsyncIterator<DecisionEvent> {
    return new FeedIterator(this.nc.subscribe(this.subject));
  }
}

/** Pulls from a NATS subscription; `return()` unsubscribes at once, even while a `next()` waits. */
class FeedIterator implements AsyncIterator<DecisionEvent> {
  private readonly inner: AsyncIterator<{ data: Uint8Array }>;
  private done = false;
  private wake?: () => void;

  constructor(private readonly sub: NatsSubscription) {
    this.inner = sub[Symbol.asyncIterator]();
  }

  async next(): Promise<IteratorResult<DecisionEvent>> {
    while (!this.done) {
      const stopped = new Promise<IteratorResult<{ data: Uint8Array }>>((resolve) => (this.wake = () => resolve({ done: true, value: undefined })));
      const r = await Promise.race([this.inner.next(), stopped]);
      if (r.done) break;
      const ev = parseEvent(r.value.data);
      if (ev) return { done: false, value: ev };
    }
    this.done = true;
    return { done: true, value: undefined };
  }

  async return(): Promise<IteratorResult<DecisionEvent>> {
    this.done = true;
    this.sub.unsubscribe();
    this.wake?.();
    return { done: true, value: undefined };
  }
}

const decoder = new TextDecoder();

function parseEvent(data: Uint8Array): DecisionEvent | undefined {
  try {
    const v: unknown = JSON.parse(decoder.decode(data));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as DecisionEvent) : undefined;
  } catch {
    return undefined;
  }
}
