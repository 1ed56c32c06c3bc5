// The zod schemas of a scenario file: its top level, `system`, each op's keys and the `expect`
// blocks. Scalars are parsed by values.ts; addresses stay expressions until resolve.ts knows the
// mapping names. Validation issues are data: issuesToProblems() turns them into located problems.

import { z } from 'zod';
import {
  CATEGORY_NAMES,
  ERRNO,
  FLAG_NAMES,
  UFFD_FEATURES,
  UFFD_REGISTER_MODES,
  type ErrnoName,
} from '../uapi';
import { ADVICES, MEMORY_KINDS, type OpName } from './program';
import { HANG_WHYS, type HangWhy } from '../mm/hang';
import { knownKernels } from './profiles';
import {
  ValueError,
  describe,
  parseAddress,
  parseBits,
  parseBool,
  parseCount,
  parseEnum,
  parseName,
  parseProt,
  parseRet,
  parseSize,
  parseString,
  parseU64,
  type AddressExpr,
  type BitNames,
} from './values';
import type { Path } from './parse';

/** The ops of the contract table, in its order. */
export const OP_NAMES = [
  'mmap',
  'munmap',
  'mprotect',
  'madvise',
  'read',
  'write',
  'uffd_open',
  'uffd_close',
  'uffd_register',
  'uffd_unregister',
  'uffd_writeprotect',
  'clear_refs',
  'pagemap_scan',
] as const satisfies readonly OpName[];

/** Keys a step may have besides its op. */
export const STEP_KEYS = ['may_fail', 'expect'] as const;

export function isOpName(key: string): key is OpName {
  return (OP_NAMES as readonly string[]).includes(key);
}

const bitsOf = (names: readonly string[]): Record<string, number> =>
  Object.fromEntries(names.map((n, bit) => [n, 1 << bit]));

export const CATEGORIES: BitNames = { what: 'category', prefix: 'PAGE_IS_', bits: bitsOf(CATEGORY_NAMES) };
export const SCAN_FLAGS: BitNames = { what: 'flag', prefix: 'PM_SCAN_', bits: bitsOf(FLAG_NAMES) };
export const UFFD_FEATURE_NAMES: BitNames = { what: 'feature', prefix: 'UFFD_FEATURE_', bits: UFFD_FEATURES };
export const REGISTER_MODES: BitNames = {
  what: 'mode',
  prefix: 'UFFDIO_REGISTER_MODE_',
  bits: UFFD_REGISTER_MODES,
};
const ERRNO_NAMES = [...Object.keys(ERRNO), 'SIGSEGV', 'SIGBUS'] as ErrnoName[];

/** A zod schema running a values.ts parser; a ValueError becomes an issue (at its sub-path). */
function value<T>(parse: (raw: unknown) => T) {
  return z.unknown().transform((raw, ctx): T => {
    if (raw === undefined) {
      ctx.addIssue({ code: 'custom', message: 'missing (required)' });
      return z.NEVER;
    }
    try {
      return parse(raw);
    } catch (e) {
      if (!(e instanceof ValueError)) throw e;
      ctx.addIssue({ code: 'custom', message: e.message, path: e.path });
      return z.NEVER;
    }
  });
}

/** A mapping with exactly these keys (unknown keys are issues naming the valid ones); null = {}. */
function mapping<S extends z.ZodRawShape>(shape: S, what: string) {
  const keys = Object.keys(shape);
  return z.preprocess((raw, ctx) => {
    if (raw === null) return Object.create(null);
    // Only the first unknown key is reported (keys are in file order): locating every one of
    // thousands of them would take quadratic time.
    const unknown = typeof raw === 'object' && !Array.isArray(raw) ? Object.keys(raw as object).find((k) => !Object.hasOwn(shape, k)) : undefined;
    if (unknown !== undefined)
      ctx.addIssue({
        code: 'custom',
        message: keys.length ? `unknown key; valid keys for ${what}: ${keys.join(', ')}` : `${what} takes no keys`,
        path: [unknown],
        params: { key: true },
      });
    return raw;
  }, z.object(shape));
}

const errnoValue = value((raw): ErrnoName | null => (raw === null ? null : parseEnum(raw, ERRNO_NAMES, 'errno')));

/** The keys of each op, given the page size of the kernel profile (for `Np` sizes). */
export function opSchemas(pageSize: bigint) {
  const addr = value((r) => parseAddress(r, pageSize));
  const size = value((r) => parseSize(r, pageSize));
  const range = { addr, size };
  const prot = value(parseProt);
  const u64 = value(parseU64);
  const bits = (names: BitNames) => value((r) => parseBits(r, names));
  return {
    mmap: mapping(
      {
        ...range,
        kind: value((r) => parseEnum(r, MEMORY_KINDS, 'kind')),
        prot: prot.optional(),
        name: value(parseName).optional(),
      },
      'mmap',
    ),
    munmap: mapping(range, 'munmap'),
    mprotect: mapping({ ...range, prot }, 'mprotect'),
    madvise: mapping(
      { ...range, advice: value((r) => parseEnum(r, Object.keys(ADVICES) as (keyof typeof ADVICES)[], 'advice')) },
      'madvise',
    ),
    read: mapping({ ...range, stride: size.optional() }, 'read'),
    write: mapping({ ...range, stride: size.optional() }, 'write'),
    uffd_open: mapping({ features: bits(UFFD_FEATURE_NAMES).optional() }, 'uffd_open'),
    uffd_close: mapping({}, 'uffd_close'),
    uffd_register: mapping({ ...range, mode: bits(REGISTER_MODES).optional() }, 'uffd_register'),
    uffd_unregister: mapping(range, 'uffd_unregister'),
    uffd_writeprotect: mapping({ ...range, wp: value(parseBool) }, 'uffd_writeprotect'),
    clear_refs: mapping({ value: u64 }, 'clear_refs'),
    pagemap_scan: mapping(
      {
        start: addr.optional(),
        end: addr.optional(),
        flags: bits(SCAN_FLAGS).optional(),
        vec_len: u64.optional(),
        max_pages: u64.optional(),
        category_inverted: bits(CATEGORIES).optional(),
        category_mask: bits(CATEGORIES).optional(),
        category_anyof_mask: bits(CATEGORIES).optional(),
        return_mask: bits(CATEGORIES).optional(),
        size: u64.optional(),
        vec: value((r) => {
          if (r !== null) throw new ValueError(`only null is accepted (a NULL array); omit vec for the output array, got ${describe(r)}`);
          return null;
        }).optional(),
      },
      'pagemap_scan',
    ),
  } satisfies Record<OpName, z.ZodType>;
}
export type OpSchemas = ReturnType<typeof opSchemas>;
export type RawOp<K extends OpName> = z.output<OpSchemas[K]>;

/** An expected region before name resolution: [start, end, categories]. */
export interface RawRegion {
  start: AddressExpr;
  end: AddressExpr;
  categories: number;
}

function parseRegion(raw: unknown, pageSize: bigint): RawRegion {
  if (!Array.isArray(raw) || raw.length !== 3)
    throw new ValueError(`expected a region [start, end, [CATEGORIES]], got ${describe(raw)}`);
  const at = <T>(i: number, parse: (r: unknown) => T): T => {
    try {
      return parse(raw[i]);
    } catch (e) {
      if (e instanceof ValueError) throw new ValueError(e.message, [i, ...e.path]);
      throw e;
    }
  };
  const start = at(0, (r) => parseAddress(r, pageSize));
  const end = at(1, (r) => parseAddress(r, pageSize));
  const categories = at(2, (r) => {
    const bits = parseBits(r, CATEGORIES);
    if (bits > 0x1ffn)
      throw new ValueError(`categories 0x${bits.toString(16)} has bits outside 0x1ff, which the kernel never reports`);
    return Number(bits);
  });
  return { start, end, categories };
}

/**
 * `expect.hang`: the step never returns because the kernel loops or deadlocks: `why` (fault-loop,
 * restart-loop, deadlock) and, for a read or write, optionally the byte touched for ever.
 */
function hangExpectSchema(pageSize: bigint) {
  return mapping(
    {
      why: value((r): HangWhy => {
        if (typeof r !== 'string' || !(HANG_WHYS as readonly string[]).includes(r))
          throw new ValueError(`expected one of ${HANG_WHYS.join(', ')}, got ${describe(r)}`);
        return r as HangWhy;
      }),
      address: value((r) => parseAddress(r, pageSize)).optional(),
    },
    'hang',
  );
}

/** `expect` of a pagemap_scan step. */
export function scanExpectSchema(pageSize: bigint) {
  return mapping(
    {
      ret: value(parseRet).optional(),
      errno: errnoValue.optional(),
      walk_end: value((r) => (r === null ? null : parseAddress(r, pageSize))).optional(),
      regions: value((r) => {
        if (!Array.isArray(r)) throw new ValueError(`expected a list of regions [start, end, [CATEGORIES]], got ${describe(r)}`);
        return r.map((item, i) => {
          try {
            return parseRegion(item, pageSize);
          } catch (e) {
            if (e instanceof ValueError) throw new ValueError(e.message, [i, ...e.path]);
            throw e;
          }
        });
      }).optional(),
      hang: hangExpectSchema(pageSize).optional(),
    },
    'a pagemap_scan expect',
  ).superRefine((e, ctx) => {
    if (e.hang !== undefined) {
      if (e.ret !== undefined || e.errno !== undefined || e.walk_end !== undefined || e.regions !== undefined)
        ctx.addIssue({ code: 'custom', message: 'hang (the step never returns) cannot be combined with ret, errno, walk_end or regions' });
    } else if (e.ret === undefined && e.errno === undefined && e.walk_end === undefined && e.regions === undefined)
      ctx.addIssue({ code: 'custom', message: 'expected at least one of ret, errno, walk_end, regions' });
  });
}

/** UFFD_PAGEFAULT_FLAG_* (struct uffd_msg arg.pagefault.flags), for `expect.userfault.flags`. */
export const PAGEFAULT_FLAGS: BitNames = { what: 'pagefault flag', prefix: 'UFFD_PAGEFAULT_FLAG_', bits: { WRITE: 1, WP: 2, MINOR: 4 } };
export type PagefaultFlagName = 'WRITE' | 'WP' | 'MINOR';

/**
 * `expect` of any other step: `errno: NAME`, `ok: true`, `userfault: {address, flags}` (the
 * step blocks in handle_userfault() with that UFFD_EVENT_PAGEFAULT message; flags optional), or
 * `hang: {why, address}` (the kernel never returns from it; address optional).
 */
export function stepExpectSchema(pageSize: bigint) {
  return mapping(
    {
      errno: errnoValue.optional(),
      ok: value((r): true => {
        if (r !== true) throw new ValueError(`expected true (to expect a failure, write errno: NAME), got ${describe(r)}`);
        return true;
      }).optional(),
      userfault: mapping(
        {
          address: value((r) => parseAddress(r, pageSize)),
          flags: value((r): PagefaultFlagName[] => {
            const bits = parseBits(r, PAGEFAULT_FLAGS);
            if (bits > 7n) throw new ValueError(`pagefault flags 0x${bits.toString(16)} have bits outside WRITE|WP|MINOR (0x7), which the kernel never sets`);
            return (['WRITE', 'WP', 'MINOR'] as const).filter((_, bit) => bits & (1n << BigInt(bit)));
          }).optional(),
        },
        'userfault',
      ).optional(),
      hang: hangExpectSchema(pageSize).optional(),
    },
    'expect',
  ).superRefine((e, ctx) => {
    if (e.userfault !== undefined && e.hang !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected either userfault (the step blocks) or hang (the kernel loops), not both' });
    } else if (e.hang !== undefined) {
      // A step that never returns returns nothing: no errno, and it is not ok.
      if (e.errno !== undefined || e.ok !== undefined)
        ctx.addIssue({ code: 'custom', message: 'hang (the step never returns) cannot be combined with errno or ok' });
    } else if (e.userfault !== undefined) {
      // A step that blocks returns nothing: no errno, and it is not ok.
      if (e.errno !== undefined || e.ok !== undefined)
        ctx.addIssue({ code: 'custom', message: 'userfault (the step blocks) cannot be combined with errno or ok' });
    } else if ((e.errno === undefined) === (e.ok === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'expected either errno: NAME or ok: true' });
    }
  });
}

/** `expect` of any other step, for 4 KiB pages (see stepExpectSchema()). */
export const otherExpectSchema = stepExpectSchema(4096n);

export const mayFailSchema = value(parseBool);

const systemSchema = mapping(
  {
    swap: value((r): boolean => {
      if (r === 'on' || r === true) return true;
      if (r === 'off' || r === false) return false;
      throw new ValueError(`expected on or off, got ${describe(r)}`);
    }).optional(),
    thp: value((r) => parseEnum(r, ['always', 'madvise', 'never'] as const, 'thp mode')).optional(),
    hugetlb_pages: mapping({ '2M': value(parseCount).optional(), '1G': value(parseCount).optional() }, 'hugetlb_pages').optional(),
    read_ahead_kb: value((r): number => {
      const kb = parseCount(r);
      if (kb < 4 || kb > 1 << 20) throw new ValueError(`expected a read_ahead_kb of 4..1048576 (at least one page), got ${describe(r)}`);
      return kb;
    }).optional(),
  },
  'system',
);

/** The top level; steps are checked one by one afterwards (their schema depends on their op). */
export const topSchema = mapping(
  {
    name: value(parseString).optional(),
    description: value(parseString).optional(),
    kernel: value((r) => {
      const known = knownKernels();
      if (typeof r === 'string' && known.includes(r)) return r;
      throw new ValueError(`unknown kernel profile ${describe(r)}; known profiles: ${known.join(', ')}`);
    }).optional(),
    system: systemSchema.optional(),
    steps: value((r) => {
      if (!Array.isArray(r)) throw new ValueError(`expected a list of steps, got ${describe(r)}`);
      return r as unknown[];
    }),
  },
  'the top level',
);

/** A validation problem: a path into the plain value and a message. */
export interface Problem {
  path: Path;
  detail: string;
  /** Point at the key at `path`, not its value (unknown keys). */
  key?: boolean;
}

/** zod issues (relative to `prefix`) → problems with our messages. */
export function issuesToProblems(issues: readonly z.core.$ZodIssue[], prefix: Path, root: unknown): Problem[] {
  return issues.map((issue) => {
    const path = [...prefix, ...(issue.path as (string | number)[])];
    if (issue.code === 'custom') return { path, detail: issue.message, key: issue.params?.key === true };
    if (issue.code === 'invalid_type') {
      const got = valueAt(root, path);
      if (got === undefined) return { path, detail: 'missing (required)' };
      const expected = { object: 'a mapping', array: 'a list', string: 'a string' }[issue.expected as string];
      return { path, detail: `expected ${expected ?? issue.expected}, got ${describe(got)}` };
    }
    return { path, detail: issue.message };
  });
}

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const k of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}
