import { Observable, type MonoTypeOperatorFunction } from "rxjs";

/**
 * Emit each value in a task of its own, in arrival order: a value that arrives
 * while an earlier one is still to be handled waits for a later task
 * (`setImmediate`), one value per task; a value that arrives with nothing ahead
 * of it is emitted at once.
 *
 * Why: the NATS client hands every message of one socket read to its callbacks
 * synchronously and writes what they published only at the end of the turn. A
 * read holding several `admit.batch` messages therefore had every reply wait until
 * the last message was decided, and the caller's next messages wait with them: the
 * service and its callers took turns being idle. Between two tasks the client has
 * written the first reply, so the caller works on it while the service decides
 * the next message.
 *
 * Values queued when the source errs or completes are emitted first. Unsubscribing
 * drops the values still queued.
 */
export function oneTaskEach<T>(): MonoTypeOperatorFunction<T> {
  return (source) =>
    new Observable<T>((subscriber) => {
      const queue: T[] = [];
      let head = 0;
      let timer: ReturnType<typeof setImmediate> | undefined;
      let end: { error: unknown } | "complete" | undefined;
      const finish = () => {
        if (end === undefined) return;
        if (end === "complete") subscriber.complete();
        else subscriber.error(end.error);
      };
      // Invariant: values are queued only while a task is scheduled.
      const drain = () => {
        timer = undefined;
        if (head === queue.length) {
          queue.length = 0;
          head = 0;
          finish();
          return;
        }
        const value = queue[head]!;
        queue[head++] = undefined as T;
        // This task emits a value: the next one waits for the task after it.
        timer = setImmediate(drain);
        subscriber.next(value);
      };
      const sub = source.subscribe({
        next: (value) => {
          if (timer !== undefined) {
            queue.push(value);
            return;
          }
          timer = setImmediate(drain);
          subscriber.next(value);
        },
        error: (error) => {
          end = { error };
          if (timer === undefined) finish();
        },
        complete: () => {
          end = "complete";
          if (timer === undefined) finish();
        },
      });
      return () => {
        sub.unsubscribe();
        if (timer !== undefined) clearImmediate(timer);
      };
    });
}
