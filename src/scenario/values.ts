// The value syntax of scenario files (scenario-format.md, "Values"): u64 integers, sizes,
// addresses (as unresolved expressions), bit lists of named flags, prot letters, enums.
// Every parser takes the raw YAML value (bigint for YAML integers, see parse.ts) and either
// returns the value or throws a ValueError whose message is the detail of an InputError.

import { U64_MAX } from '../uapi';

/** A bad value. `path` is relative to the value being parsed (e.g. [2] for a list element). */
export class ValueError extends Error {
  constructor(
    message: string,
    readonly path: (string | number)[] = [],
  ) {
    super(message);
  }
}

/** A short rendering of a raw value for messages. */
export function describe(raw: unknown): string {
  if (raw === undefined) return 'nothing';
  if (raw === null) return 'null';
  if (typeof raw === 'string') {
    // JSON escapes the C0 controls; the rest that could hide text or drive a terminal (C1
    // controls, line separators, zero-width and bidi marks) is escaped too.
    return JSON.stringify(raw.length > 40 ? raw.slice(0, 40) + '...' : raw).replace(
      /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  // A YAML float that happens to be integral still reads as a float: `1.0`, not `1`.
  if (typeof raw === 'number') return Number.isInteger(raw) ? `${raw}.0` : String(raw);
  if (typeof raw === 'bigint' || typeof raw === 'boolean') return String(raw);
  if (Array.isArray(raw)) return `a list of ${raw.length}`;
  return 'a mapping';
}

const DEC = /^[0-9]+$/;
const HEX = /^0[xX][0-9a-fA-F]+$/;
const U64_TEXT = 'a u64 (an integer 0..2^64-1, decimal or "0x..." hex)';

/** `123`, `0x7b` (YAML integers) or the strings "123", "0x7b"; undefined when not integer syntax. */
function integerOf(raw: unknown): bigint | undefined {
  if (typeof raw === 'bigint') return raw;
  if (typeof raw === 'string' && (DEC.test(raw) || HEX.test(raw))) return BigInt(raw);
  return undefined;
}

export function inU64(v: bigint): boolean {
  return v >= 0n && v <= U64_MAX;
}

/** A u64: integers, decimal or "0x..." hex strings. */
export function parseU64(raw: unknown): bigint {
  const v = integerOf(raw);
  if (v === undefined || !inU64(v)) throw new ValueError(`expected ${U64_TEXT}, got ${describe(raw)}`);
  return v;
}

/** A u64, or -1 (what a failing system call returns). */
export function parseRet(raw: unknown): bigint {
  const v = typeof raw === 'bigint' && raw === -1n ? raw : integerOf(raw);
  if (v === undefined || (v !== -1n && !inU64(v)))
    throw new ValueError(`expected -1 or ${U64_TEXT}, got ${describe(raw)}`);
  return v;
}

/** A non-negative integer small enough for a JS number (pool sizes). */
export function parseCount(raw: unknown): number {
  const v = integerOf(raw);
  if (v === undefined || v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new ValueError(`expected a count (an integer 0..2^53-1), got ${describe(raw)}`);
  return Number(v);
}

const UNITS: Record<string, bigint> = { K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };
const SIZE = /^(0[xX][0-9a-fA-F]+|[0-9]+)([KMGTp])$/;
export const SIZE_TEXT = 'a size like 4K, 2M, 64p';

/** A size in bytes: an integer, or N with a binary unit (K M G T) or `p` (pages of pageSize). */
export function parseSize(raw: unknown, pageSize: bigint): bigint {
  let v = integerOf(raw);
  if (v === undefined && typeof raw === 'string') {
    const m = SIZE.exec(raw);
    if (m) v = BigInt(m[1]) * (m[2] === 'p' ? pageSize : UNITS[m[2]]);
  }
  if (v === undefined) throw new ValueError(`expected ${SIZE_TEXT}, got ${describe(raw)}`);
  if (!inU64(v)) throw new ValueError(`expected ${SIZE_TEXT} within 0..2^64-1 bytes, got ${describe(raw)}`);
  return v;
}

/** A mapping name, as defined by `mmap.name`: no `+`/`-`, so that NAME+SIZE is unambiguous. */
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseName(raw: unknown): string {
  if (typeof raw !== 'string' || !NAME.test(raw))
    throw new ValueError(
      `expected a mapping name (letters, digits and _, not starting with a digit), got ${describe(raw)}`,
    );
  return raw;
}

/** An address before mapping names are resolved: a number, or NAME [+|- offset]. */
export type AddressExpr =
  | { kind: 'number'; value: bigint }
  | { kind: 'name'; name: string; offset: bigint; text: string };

const NAME_EXPR = /^([A-Za-z_][A-Za-z0-9_]*)(?:\s*([+-])\s*(\S+))?$/;
const ADDRESS_TEXT = 'an address (an integer, a mapping name, NAME+SIZE or NAME-SIZE)';

export function parseAddress(raw: unknown, pageSize: bigint): AddressExpr {
  const v = integerOf(raw);
  if (v !== undefined) {
    if (!inU64(v)) throw new ValueError(`expected ${ADDRESS_TEXT} within 0..2^64-1, got ${describe(raw)}`);
    return { kind: 'number', value: v };
  }
  const m = typeof raw === 'string' ? NAME_EXPR.exec(raw) : null;
  if (!m) throw new ValueError(`expected ${ADDRESS_TEXT}, got ${describe(raw)}`);
  let offset = 0n;
  if (m[2] !== undefined) {
    try {
      offset = parseSize(m[3], pageSize);
    } catch {
      throw new ValueError(`expected ${SIZE_TEXT} after "${m[1]}${m[2]}" in address ${describe(raw)}`);
    }
    if (m[2] === '-') offset = -offset;
  }
  return { kind: 'name', name: m[1], offset, text: raw as string };
}

/** Names of the bits of a list, e.g. categories: name → bit value. */
export interface BitNames {
  /** For messages: "category", "flag", ... */
  what: string;
  /** The uapi prefix users may mistakenly write: "PAGE_IS_". */
  prefix: string;
  bits: Readonly<Record<string, number>>;
}

function unknownName(name: string, names: BitNames): string {
  const valid = Object.keys(names.bits);
  let hint = '';
  if (name.startsWith(names.prefix) && Object.hasOwn(names.bits, name.slice(names.prefix.length)))
    hint = ` (write it without the ${names.prefix} prefix)`;
  else if (Object.hasOwn(names.bits, name.toUpperCase())) hint = ' (names are upper case)';
  return `unknown ${names.what} ${describe(name)}${hint}; valid: ${valid.join(', ')}, or an integer`;
}

/** A list of names and/or integers OR'ed together, or a plain integer (passed through as is). */
export function parseBits(raw: unknown, names: BitNames): bigint {
  if (!Array.isArray(raw)) {
    const v = integerOf(raw);
    if (v !== undefined && inU64(v)) return v;
    if (typeof raw === 'string' && Object.hasOwn(names.bits, raw))
      throw new ValueError(`expected a list of ${names.what} names or an integer, got ${describe(raw)} (write [${raw}])`);
    throw new ValueError(`expected a list of ${names.what} names or ${U64_TEXT}, got ${describe(raw)}`);
  }
  let bits = 0n;
  raw.forEach((item, i) => {
    if (typeof item === 'string' && !/^[-+]?[0-9]/.test(item)) {
      if (!Object.hasOwn(names.bits, item)) throw new ValueError(unknownName(item, names), [i]);
      bits |= BigInt(names.bits[item]);
      return;
    }
    const v = integerOf(item);
    if (v === undefined || !inU64(v))
      throw new ValueError(`expected a ${names.what} name or ${U64_TEXT}, got ${describe(item)}`, [i]);
    bits |= v;
  });
  return bits;
}

/** `none`, or letters of `rwx` (each at most once) → PROT_* bits. */
export function parseProt(raw: unknown): number {
  if (raw === 'none') return 0;
  if (typeof raw === 'string' && /^[rwx]+$/.test(raw) && new Set(raw).size === raw.length)
    return (raw.includes('r') ? 1 : 0) | (raw.includes('w') ? 2 : 0) | (raw.includes('x') ? 4 : 0);
  throw new ValueError(`expected prot "none" or letters of "rwx" (like r, rw, rx), got ${describe(raw)}`);
}

/** One of a fixed set of strings. */
export function parseEnum<T extends string>(raw: unknown, valid: readonly T[], what: string): T {
  if (typeof raw === 'string' && (valid as readonly string[]).includes(raw)) return raw as T;
  throw new ValueError(`unknown ${what} ${describe(raw)}; valid: ${valid.join(', ')}`);
}

export function parseBool(raw: unknown): boolean {
  if (typeof raw !== 'boolean') throw new ValueError(`expected true or false, got ${describe(raw)}`);
  return raw;
}

export function parseString(raw: unknown): string {
  if (typeof raw !== 'string') throw new ValueError(`expected a string, got ${describe(raw)}`);
  return raw;
}
