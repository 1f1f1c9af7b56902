import { describe, expect, it } from "vitest";
import { ExpiryQueue } from "../../src/admission/ExpiryQueue.js";
import { Fifo } from "../../src/admission/Fifo.js";

describe("Fifo", () => {
  for (const release of [true, false]) {
    it(`keeps first-in first-out order across compactions (release ${release})`, () => {
      const q = new Fifo<number>(release);
      let next = 0;
      let expected = 0;
      // Pushes and shifts interleaved so that the head passes 1024 and the array is compacted several times.
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
    });
  }
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
