/**
 * UTF-8 bytes of a string, for message bodies. `Buffer.from` rather than
 * `TextEncoder.encode`: on Node 20 the latter costs about 3 µs for a 700-byte
 * decision against 0.5 µs (measured with a decision carrying seven limits), and
 * every reply and decision event goes through here.
 */
export function utf8Bytes(text: string): Uint8Array {
  return Buffer.from(text, "utf8");
}
