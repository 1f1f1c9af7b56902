import { Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import { oneTaskEach } from "../../src/pipelines/oneTaskEach.js";

const tasksLater = (n: number): Promise<void> =>
  n === 0 ? Promise.resolve() : new Promise<void>((r) => setImmediate(() => void tasksLater(n - 1).then(r)));

describe("oneTaskEach", () => {
  it("emits a lone value at once and each value of a burst in a task of its own, in order", async () => {
    const src = new Subject<number>();
    const log: string[] = [];
    src.pipe(oneTaskEach()).subscribe((v) => {
      log.push(`handle ${v}`);
      // What a handler defers to the end of its turn (the NATS client's write) comes before the next value.
      queueMicrotask(() => log.push(`written ${v}`));
    });
    src.next(1);
    src.next(2);
    src.next(3);
    expect(log).toEqual(["handle 1"]);
    await tasksLater(4);
    expect(log).toEqual(["handle 1", "written 1", "handle 2", "written 2", "handle 3", "written 3"]);
  });

  it("queues what arrives while a value is handled, behind the values already waiting", async () => {
    const src = new Subject<number>();
    const seen: number[] = [];
    src.pipe(oneTaskEach()).subscribe((v) => {
      seen.push(v);
      if (v === 2) src.next(4);
    });
    src.next(1);
    src.next(2);
    src.next(3);
    await tasksLater(5);
    src.next(5);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });

  it("emits what it holds before completing, and before an error", async () => {
    const log: string[] = [];
    const a = new Subject<number>();
    a.pipe(oneTaskEach()).subscribe({ next: (v) => log.push(`next ${v}`), complete: () => log.push("complete") });
    a.next(1);
    a.next(2);
    a.complete();
    const b = new Subject<number>();
    b.pipe(oneTaskEach()).subscribe({ next: (v) => log.push(`next ${v}`), error: (e) => log.push(`error ${e}`) });
    b.error("boom");
    await tasksLater(4);
    expect(log).toEqual(["next 1", "error boom", "next 2", "complete"]);
  });

  it("emits nothing after unsubscribe", async () => {
    const src = new Subject<number>();
    const seen: number[] = [];
    const sub = src.pipe(oneTaskEach()).subscribe((v) => seen.push(v));
    src.next(1);
    src.next(2);
    sub.unsubscribe();
    await tasksLater(3);
    src.next(3);
    expect(seen).toEqual([1]);
  });
});
