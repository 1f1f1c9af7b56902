import { Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import { bufferTurn } from "../../src/pipelines/bufferTurn.js";

const nextTurn = () => new Promise<void>((r) => setTimeout(r, 0));

describe("bufferTurn", () => {
  it("groups what arrives in one turn and emits it before the next", async () => {
    const src = new Subject<number>();
    const out: number[][] = [];
    src.pipe(bufferTurn()).subscribe((b) => out.push(b));
    src.next(1);
    src.next(2);
    src.next(3);
    expect(out).toEqual([]);
    await nextTurn();
    src.next(4);
    await nextTurn();
    expect(out).toEqual([[1, 2, 3], [4]]);
  });

  it("emits what it holds before completing, and before an error", async () => {
    const done: string[] = [];
    const a = new Subject<number>();
    a.pipe(bufferTurn()).subscribe({ next: (b) => done.push(`next ${b}`), complete: () => done.push("complete") });
    a.next(1);
    a.complete();
    const b = new Subject<number>();
    b.pipe(bufferTurn()).subscribe({ next: (v) => done.push(`next ${v}`), error: (e) => done.push(`error ${e}`) });
    b.next(2);
    b.error("boom");
    await nextTurn();
    expect(done).toEqual(["next 1", "complete", "next 2", "error boom"]);
  });

  it("emits nothing after unsubscribe, and nothing for an empty source", async () => {
    const src = new Subject<number>();
    const out: number[][] = [];
    const sub = src.pipe(bufferTurn()).subscribe((b) => out.push(b));
    src.next(1);
    sub.unsubscribe();
    await nextTurn();
    expect(out).toEqual([]);
    expect(src.observed).toBe(false);
  });
});
