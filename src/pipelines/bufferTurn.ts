import { Observable, type OperatorFunction } from "rxjs";

/**
 * Collect the values that arrive within one turn of the event loop (before the
 * next microtask) and emit them as one array. The NATS client hands every message
 * of one socket read to its callbacks synchronously, so this groups a read's
 * messages without adding a timer's latency. Buffered values are emitted before
 * completion; an error drops nothing that was already emitted.
 */
export function bufferTurn<T>(): OperatorFunction<T, T[]> {
  return (source) =>
    new Observable<T[]>((subscriber) => {
      let buffer: T[] | null = null;
      const emit = () => {
        const b = buffer;
        buffer = null;
        if (b && !subscriber.closed) subscriber.next(b);
      };
      const sub = source.subscribe({
        next: (v) => {
          if (buffer === null) {
            buffer = [];
            queueMicrotask(emit);
          }
          buffer.push(v);
        },
        error: (e) => {
          emit();
          subscriber.error(e);
        },
        complete: () => {
          emit();
          subscriber.complete();
        },
      });
      return () => {
        buffer = null;
        sub.unsubscribe();
      };
    });
}
