/**
 * Model names and scope values may hold characters a NATS subject token cannot
 * (`.`, `*`, `>`, white space). In subjects they are written with this one
 * reversible encoding: every byte outside `[A-Za-z0-9_-]` and some safe
 * punctuation is written `%XX` (upper-case hex of its UTF-8 bytes), `%` included.
 * `decodeSubjectToken(encodeSubjectToken(s)) === s` for every string.
 */

// Safe: ASCII letters, digits and punctuation with no meaning to NATS or to this encoding.
const SAFE = /^[A-Za-z0-9_\-+=:@,~!()'$;&#]$/;

const hex = (b: number) => "%" + b.toString(16).toUpperCase().padStart(2, "0");
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encode a raw name as one subject token. An empty name encodes as `%` alone, which no other name produces. */
export function encodeSubjectToken(name: string): string {
  if (name.length === 0) return "%";
  let out = "";
  let plain = true;
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (!SAFE.test(c)) {
      plain = false;
      break;
    }
  }
  if (plain) return name;
  for (const ch of name) {
    if (SAFE.test(ch)) out += ch;
    else for (const b of encoder.encode(ch)) out += hex(b);
  }
  return out;
}

/** Decode a subject token made by {@link encodeSubjectToken}. Throws `TypeError` on a malformed token. */
export function decodeSubjectToken(token: string): string {
  if (token === "%") return "";
  if (!token.includes("%")) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; ) {
    const c = token[i]!;
    if (c === "%") {
      const h = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(h)) throw new TypeError(`malformed subject token: ${token}`);
      bytes.push(parseInt(h, 16));
      i += 3;
    } else {
      for (const b of encoder.encode(c)) bytes.push(b);
      i += 1;
    }
  }
  return decoder.decode(new Uint8Array(bytes));
}
