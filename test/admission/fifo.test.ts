import { describe, expect, it } from "vitest";
import { ExpiryQueue } from "../../src/admission/ExpiryQueue.js";
import { Fifo } from "../../src/admission/Fifo.js";
import { NumberFifo } from "../../src/admission/NumberFifo.js";

/** Pushes and shifts interleaved so that a Fifo's head passes 1024 (compactions) and a NumberFifo wraps and grows. */
function firstInFirstOut(q: { push(x: number): void; shift(): number | undefined; peek(): number | undefined; last(): number | undefined; readonly size: number } & Iterable<number>): void {
  let next = 0;
  let expected = 0;
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 700; i++) q.push(next++);
    for (let i = 0; i < 600; i++) expect(q.shift()).toBe(expected++);
    expect(q.size).toBe(next - expected);
    expect(q.peek()).toBe(expected);
    expect(q.last()).toBe(next - 1);
  }
  expect([...q]).toEqual(Array.from({ length: next - expected }, (_, i) => expected + i));
  while (q.size > 0) expect(q.shift()).toBe(expected++);
  expect(q.shift()).toBeUndefined();
  expect(q.peek()).toBeUndefined();
  expect(q.last()).toBeUndefined();
}

describe("Fifo", () => {
  it("keeps first-in first-out order across compactions", () => firstInFirstOut(new Fifo<number>()));

  it("lets go of the objects it has given out", () => {
    const q = new Fifo<{ n: number }>();
    q.push({ n: 1 });
    q.push({ n: 2 });
    expect(q.shift()).toEqual({ n: 1 });
    expect((q as unknown as { items: unknown[] }).items[0]).toBeUndefined();
  });
});

describe("NumberFifo", () => {
  it("keeps first-in first-out order across wrap-arounds and growth", () => firstInFirstOut(new NumberFifo(4)));

  it("wraps without growing while it has room, and keeps large handles and fractional times exact", () => {
    const q = new NumberFifo(4);
    const big = 2 ** 52 + 12_345;
    for (let round = 0; round < 10; round++) {
      q.push(big + round);
      q.push(1_700_000_000_000.5 + round);
      expect(q.shift()).toBe(big + round);
      expect(q.shift()).toBe(1_700_000_000_000.5 + round);
    }
    expect(q.capacity).toBe(4);
    for (let i = 0; i < 5; i++) q.push(i);
    expect(q.capacity).toBe(8);
    expect([...q]).toEqual([0, 1, 2, 3, 4]);
  });

  it("refuses a capacity that is not a power of two", () => {
    expect(() => new NumberFifo(6)).toThrow("capacity: a power of two (got 6)");
    expect(() => new NumberFifo(0)).toThrow(RangeError);
  });
});

describe("ExpiryQueue", () => {
  it("pops the keys due by a time, in order, and shifts the oldest", () => {
    const q = new ExpiryQueue<string>();
    for (let i = 0; i < 3000; i++) q.push(`k${i}`, 1_700_000_000_000.5 + i);
    expect([...q.popDue(1_700_000_000_000.5 + 1999)]).toEqual(Array.from({ length: 2000 }, (_, i) => `k${i}`));
    expect(q.size).toBe(1000);
    expect(q.nextTime()).toBe(1_700_000_000_000.5 + 2000);
    expect(q.shift()).toBe("k2000");
    expect(q.nextTime()).toBe(1_700_000_000_000.5 + 2001);
  });
});
