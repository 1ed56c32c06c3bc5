// fast-check arbitraries for the property tests: random address spaces (anonymous, shmem and hugetlb
// mappings at 2 MiB-aligned addresses in 0x100000000000..0x100100000000, anonymous ones sometimes
// whole 2 MiB blocks with MADV_HUGEPAGE (THP), with or without swap, THP madvise/always/never, a
// hugetlb pool of a few pages, touches, userfaultfd, madvise, munmap, mprotect) and random
// PAGEMAP_SCAN arguments, as resolved scenario Programs.

import fc from 'fast-check';
import type { Advice, Op, Program, Step } from '../../src/scenario/program';
import { VEC_ADDR } from '../../src/scenario/program';
import type { PmScanArg } from '../../src/uapi';

export const P = 4096n;
export const WINDOW_START = 0x100000000000n;
export const WINDOW_END = 0x100100000000n;
const MiB2 = 2n * 1024n * 1024n;
const GiB = 1024n * 1024n * 1024n;
const U64_MAX = (1n << 64n) - 1n;

/** Where mappings start: a few 2 MiB blocks at the start of each GiB of the window, and its end. */
export const ANCHORS: bigint[] = [
  WINDOW_START,
  WINDOW_START + MiB2,
  WINDOW_START + 2n * MiB2,
  WINDOW_START + 5n * MiB2,
  WINDOW_START + GiB - MiB2, // the last block of the first GiB: mappings cross into the second
  WINDOW_START + GiB,
  WINDOW_START + 2n * GiB + 3n * MiB2,
  WINDOW_START + 3n * GiB + 511n * MiB2, // the last block of the window
];

/** The kinds of mapping the reference models. */
export type MapKind = 'anon' | 'hugetlb' | 'hugetlb-shared' | 'hugetlb-1g' | 'shared-anon' | 'memfd-private' | 'memfd-shared';

/** A mapping made by the setup of every case: at an anchor, of some pages, with a protection. */
export interface MapSpec {
  anchor: number;
  pages: number;
  prot: number;
  /** Absent: anon (cases recorded before the other kinds keep their meaning). */
  kind?: MapKind;
  /** anon: MADV_HUGEPAGE over the whole mapping right after the mmap (THP may be used). */
  hugepage?: boolean;
}

const prot3 = fc.oneof({ weight: 8, arbitrary: fc.constant(3) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 5, 7) });

const anonMapSpec: fc.Arbitrary<MapSpec> = fc.record({
  anchor: fc.nat(ANCHORS.length - 1),
  pages: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 40 }) },
    { weight: 3, arbitrary: fc.constantFrom(256, 511, 512, 513, 1024, 1300, 1536) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 1600 }) },
  ),
  prot: prot3,
});

/** anon mappings THP can be used in: whole 2 MiB blocks (anchors are 2 MiB aligned), MADV_HUGEPAGE. */
const thpMapSpec: fc.Arbitrary<MapSpec> = fc.record({
  anchor: fc.nat(ANCHORS.length - 1),
  pages: fc.constantFrom(512, 512, 1024, 1024, 1536, 1300, 700),
  prot: fc.oneof({ weight: 12, arbitrary: fc.constant(3) }, { weight: 1, arbitrary: fc.constantFrom(1, 0) }),
  hugepage: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
});

/** hugetlb mappings: sizes are rounded up to whole huge pages by mmap. */
const hugeMapSpec: fc.Arbitrary<MapSpec> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      anchor: fc.nat(ANCHORS.length - 1),
      pages: fc.constantFrom(512, 512, 1024, 1024, 1536, 2048, 1, 300, 513),
      prot: prot3,
      kind: fc.constantFrom<MapKind>('hugetlb', 'hugetlb', 'hugetlb-shared'),
    }),
  },
  // 1 GiB pages: only the first and second GiB of the window are aligned anchors.
  { weight: 1, arbitrary: fc.record({ anchor: fc.constantFrom(0, 5, 5, 1), pages: fc.constantFrom(262144, 1), prot: prot3, kind: fc.constant<MapKind>('hugetlb-1g') }) },
);

/** shmem mappings (each mmap() a file of its own): the sizes of anonymous ones. */
const shmMapSpec: fc.Arbitrary<MapSpec> = fc.record({
  anchor: fc.nat(ANCHORS.length - 1),
  pages: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 64 }) }, { weight: 2, arbitrary: fc.constantFrom(256, 511, 512, 513, 1024) }),
  prot: prot3,
  kind: fc.constantFrom<MapKind>('shared-anon', 'memfd-private', 'memfd-shared'),
});

const mapSpec: fc.Arbitrary<MapSpec> = fc.oneof(
  { weight: 5, arbitrary: anonMapSpec },
  { weight: 2, arbitrary: thpMapSpec },
  { weight: 2, arbitrary: hugeMapSpec },
  { weight: 3, arbitrary: shmMapSpec },
);

/** The size in bytes of a huge page of a kind (0: not hugetlb). */
export const hugeSizeOf = (kind: MapKind | undefined): bigint => (kind === 'hugetlb-1g' ? GiB : kind === 'hugetlb' || kind === 'hugetlb-shared' ? MiB2 : 0n);

/**
 * A range relative to one of the case's mappings: `at` and `len` are per-mille of its size,
 * `nudge` moves the start by a few pages (across its edges), `pages` replaces len when set.
 */
export interface Target {
  map: number;
  at: number;
  len: number;
  nudge: number;
  pages: number | null;
  /** On a hugetlb mapping: round the start down and the end up to huge pages. */
  snap?: boolean;
}

const target: fc.Arbitrary<Target> = fc.record({
  map: fc.nat(7),
  at: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: 0, max: 1000 }) }),
  len: fc.oneof({ weight: 3, arbitrary: fc.constant(1000) }, { weight: 4, arbitrary: fc.integer({ min: 0, max: 1100 }) }),
  nudge: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }) }),
  pages: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 20 }) }, { weight: 1, arbitrary: fc.constantFrom(511, 512, 513, 1024) }),
  snap: fc.oneof({ weight: 1, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

/** [addr, addr+size) of a target, in bytes. */
export function resolveTarget(maps: MapSpec[], t: Target): { addr: bigint; size: bigint } {
  const m = maps[t.map % maps.length];
  const first = Math.floor((m.pages * t.at) / 1000) + t.nudge;
  const n = t.pages ?? Math.max(0, Math.ceil((m.pages * t.len) / 1000));
  let addr = ANCHORS[m.anchor] + BigInt(first) * P;
  let size = BigInt(n) * P;
  const h = hugeSizeOf(m.kind);
  if (t.snap && h) {
    const end = ((addr + size + h - 1n) / h) * h;
    addr = (addr / h) * h;
    size = end - addr;
  }
  return { addr, size };
}

/** The length of a mapping as mmap() is given it. */
const mapSize = (m: MapSpec): bigint => BigInt(m.pages) * P;

const prot = fc.oneof({ weight: 6, arbitrary: fc.constant(3) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 5, 7) });
const mayFail = fc.oneof({ weight: 19, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) });

const ADVICES: Advice[] = [
  'dontneed',
  'dontneed',
  'dontneed',
  'free',
  'free',
  'pageout',
  'pageout',
  'guard-install',
  'guard-install',
  'guard-remove',
  'populate-read',
  'populate-write',
  'willneed',
  'cold',
  'remove',
  'normal',
  'random',
  'sequential',
  'dontfork',
  'dofork',
  'nohugepage',
  'hugepage',
  'hugepage',
  'cold',
];

// UFFD_FEATURE_*: WP_UNPOPULATED 1<<13, WP_ASYNC 1<<15, and a few that change nothing here.
const FEATURES: bigint[] = [0xa000n, 0xa000n, 0xa000n, 0x8000n, 0x2000n, 0n, 0x1000n | 0xa000n, 0x10000n, 1n << 20n];
// UFFDIO_REGISTER_MODE_*: MISSING 1, WP 2, MINOR 4.
const MODES: bigint[] = [2n, 2n, 2n, 2n, 2n, 3n, 1n, 4n, 6n, 0n, 8n];

const CATEGORY_BITS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/** Category masks: mostly empty or one or two of the bits anonymous memory can show. */
const mask = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0n) },
  { weight: 4, arbitrary: fc.constantFrom(1n, 2n, 8n, 16n, 32n, 256n, 64n, 4n) },
  { weight: 2, arbitrary: fc.subarray(CATEGORY_BITS, { maxLength: 3 }).map((b) => BigInt(b.reduce((x, y) => x | y, 0))) },
  { weight: 1, arbitrary: fc.bigInt(0n, 0x1ffn) },
);
/** Mostly nothing: a filter that keeps most units. */
const lightMask = fc.oneof({ weight: 10, arbitrary: fc.constant(0n) }, { weight: 3, arbitrary: fc.constantFrom(1n, 2n, 8n, 16n, 32n, 256n, 64n) }, { weight: 1, arbitrary: mask });
const invalidMask = fc.constantFrom(0x200n, 1n << 63n);

/** The fields of a scan other than its range. */
const scanFields = fc.record({
  flags: fc.oneof({ weight: 12, arbitrary: fc.constantFrom(0n, 0n, 1n, 1n, 2n, 3n) }, { weight: 1, arbitrary: fc.constantFrom(4n, 1n << 63n) }),
  vec: fc.oneof(
    { weight: 14, arbitrary: fc.constantFrom(0n, 1n, 2n, 3n, 5n, 10n, 64n, 511n, 512n, 513n, 600n, 1024n) },
    { weight: 1, arbitrary: fc.constantFrom(U64_MAX, 1n << 40n) }, // EFAULT
    { weight: 1, arbitrary: fc.constantFrom('null0', 'null5') },
  ),
  maxPages: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0n) },
    { weight: 3, arbitrary: fc.constantFrom(1n, 2n, 3n, 7n, 511n, 512n, 513n, 1000n) },
    { weight: 1, arbitrary: fc.constantFrom(U64_MAX, 1n << 40n) },
  ),
  preset: fc.oneof(
    { weight: 12, arbitrary: fc.constant('random') },
    { weight: 3, arbitrary: fc.constant('exclusive-wp') }, // WP_MATCHING without an output array
    { weight: 4, arbitrary: fc.constant('written') }, // the WRITTEN fast path
    { weight: 1, arbitrary: fc.constant('invalid-mask') },
    { weight: 1, arbitrary: fc.constant('invalid-size') },
  ),
  inverted: lightMask,
  catMask: mask,
  anyof: lightMask,
  ret: fc.oneof({ weight: 4, arbitrary: fc.constant(0x1ffn) }, { weight: 2, arbitrary: mask }, { weight: 1, arbitrary: fc.constant(2n) }),
  bad: invalidMask,
});

/** A scan's range: relative to a mapping, or odd (unaligned, reversed, beyond TASK_SIZE). */
const scanRange = fc.oneof(
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('target' as const), t: target, tail: fc.constantFrom(0n, 0n, 0n, 1n, 4095n) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('odd' as const),
      start: fc.constantFrom(WINDOW_START + 1n, 0n, 0x7ffffffff000n, 1n << 47n, U64_MAX - 4095n, WINDOW_START),
      length: fc.constantFrom(0n, 1n, P + 1n, -P, -1n, 1n << 47n, U64_MAX, 4n * GiB, GiB + 7n * P),
    }),
  },
);

type ScanFields = typeof scanFields extends fc.Arbitrary<infer T> ? T : never;

function makeScanArg(start: bigint, end: bigint, r: ScanFields): PmScanArg {
  const arg: PmScanArg = {
    size: 96n,
    flags: r.flags,
    start,
    end: end & U64_MAX,
    walk_end: 0n,
    vec: VEC_ADDR,
    vec_len: 0n,
    max_pages: r.maxPages,
    category_inverted: r.inverted,
    category_mask: r.catMask,
    category_anyof_mask: r.anyof,
    return_mask: r.ret,
  };
  if (r.vec === 'null0' || r.vec === 'null5') {
    arg.vec = 0n;
    arg.vec_len = r.vec === 'null0' ? 0n : 5n;
  } else arg.vec_len = r.vec;
  if (r.preset === 'written') {
    arg.category_inverted = arg.category_anyof_mask = 0n;
    arg.category_mask = arg.return_mask = 2n;
  } else if (r.preset === 'exclusive-wp') {
    arg.flags = (arg.flags & 2n) | 1n;
    arg.vec_len = 0n;
  } else if (r.preset === 'invalid-mask') arg.category_anyof_mask |= r.bad;
  else if (r.preset === 'invalid-size') arg.size = 88n;
  return arg;
}

/** One step before it is resolved against the case's mappings. */
export type StepSpec =
  | { kind: 'mmap'; map: MapSpec; mayFail: boolean }
  | { kind: 'mmap-at'; t: Target; prot: number; mayFail: boolean }
  | { kind: 'touch'; write: boolean; t: Target; byte: bigint; stride: bigint; mayFail: boolean }
  | { kind: 'stripes'; write: boolean; map: number; stride: bigint }
  | { kind: 'range'; op: 'munmap' | 'uffd_unregister'; t: Target; mayFail: boolean }
  | { kind: 'mprotect'; t: Target; prot: number; mayFail: boolean }
  | { kind: 'madvise'; t: Target; advice: Advice; mayFail: boolean }
  | { kind: 'uffd_open'; features: bigint; mayFail: boolean }
  | { kind: 'uffd_close'; mayFail: boolean }
  | { kind: 'uffd_register'; t: Target; mode: bigint; mayFail: boolean }
  | { kind: 'uffd_writeprotect'; t: Target; wp: boolean; mayFail: boolean }
  | { kind: 'scan'; range: typeof scanRange extends fc.Arbitrary<infer R> ? R : never; fields: ScanFields };

const stride = fc.oneof({ weight: 5, arbitrary: fc.constant(P) }, { weight: 3, arbitrary: fc.constantFrom(2n * P, 2n * P, 3n * P, 512n * P, 1n, 1000n, 5000n) });

const stepSpec: fc.Arbitrary<StepSpec> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('mmap' as const), map: mapSpec, mayFail }) },
  // anywhere near a mapping: refills holes left by munmap, makes neighbours inside a 2 MiB block
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('mmap-at' as const), t: target, prot, mayFail }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('touch' as const),
      write: fc.boolean(),
      t: target,
      byte: fc.oneof({ weight: 4, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: fc.bigInt(1n, 4095n) }),
      stride,
      mayFail,
    }),
  },
  // every other (or third) page of a whole mapping: many regions, bounce-buffer restarts
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('stripes' as const), write: fc.boolean(), map: fc.nat(7), stride: fc.constantFrom(2n * P, 2n * P, 3n * P) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('range' as const), op: fc.constantFrom('munmap' as const, 'uffd_unregister' as const), t: target, mayFail }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('mprotect' as const), t: target, prot, mayFail }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('madvise' as const), t: target, advice: fc.constantFrom(...ADVICES), mayFail }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('uffd_open' as const), features: fc.constantFrom(...FEATURES), mayFail }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('uffd_close' as const), mayFail }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('uffd_register' as const), t: target, mode: fc.constantFrom(...MODES), mayFail }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('uffd_writeprotect' as const), t: target, wp: fc.boolean(), mayFail }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('scan' as const), range: scanRange, fields: scanFields }) },
);

function resolveStep(maps: MapSpec[], s: StepSpec): RawStep {
  switch (s.kind) {
    case 'mmap':
      return { op: { op: 'mmap', addr: ANCHORS[s.map.anchor], size: mapSize(s.map), kind: s.map.kind ?? 'anon', prot: s.map.prot }, mayFail: s.mayFail };
    case 'mmap-at':
      return { op: { op: 'mmap', ...resolveTarget(maps, s.t), kind: 'anon', prot: s.prot }, mayFail: s.mayFail };
    case 'touch': {
      const { addr, size } = resolveTarget(maps, s.t);
      // Over 1 GiB pages, a touch of every page would be 2^18 faults: scale the stride up.
      const giant = maps[s.t.map % maps.length].kind === 'hugetlb-1g';
      const stride = giant ? s.stride * (s.stride < P ? 262144n : 512n) : s.stride;
      return { op: { op: s.write ? 'write' : 'read', addr: addr + s.byte, size, stride }, mayFail: s.mayFail };
    }
    case 'stripes': {
      const m = maps[s.map % maps.length];
      return { op: { op: s.write ? 'write' : 'read', addr: ANCHORS[m.anchor], size: mapSize(m), stride: m.kind === 'hugetlb-1g' ? s.stride * 4096n : s.stride }, mayFail: true };
    }
    case 'range':
      return { op: { op: s.op, ...resolveTarget(maps, s.t) }, mayFail: s.mayFail };
    case 'mprotect':
      return { op: { op: 'mprotect', ...resolveTarget(maps, s.t), prot: s.prot }, mayFail: s.mayFail };
    case 'madvise':
      return { op: { op: 'madvise', ...resolveTarget(maps, s.t), advice: s.advice }, mayFail: s.mayFail };
    case 'uffd_open':
      return { op: { op: 'uffd_open', features: s.features }, mayFail: s.mayFail };
    case 'uffd_close':
      return { op: { op: 'uffd_close' }, mayFail: s.mayFail };
    case 'uffd_register':
      return { op: { op: 'uffd_register', ...resolveTarget(maps, s.t), mode: s.mode }, mayFail: s.mayFail };
    case 'uffd_writeprotect':
      return { op: { op: 'uffd_writeprotect', ...resolveTarget(maps, s.t), wp: s.wp }, mayFail: s.mayFail };
    case 'scan': {
      let start: bigint;
      let end: bigint;
      if (s.range.kind === 'target') {
        const { addr, size } = resolveTarget(maps, s.range.t);
        start = addr;
        end = addr + size + s.range.tail;
      } else {
        start = s.range.start;
        end = s.range.start + s.range.length;
      }
      return { op: { op: 'pagemap_scan', arg: makeScanArg(start, end, s.fields) }, mayFail: false };
    }
  }
}

/** One step (before numbering): an op and may_fail. */
export type RawStep = { op: Op; mayFail: boolean };

/**
 * The probes every generated program ends with: [a,c), [a,b), [b,c) without side effects or
 * limits, then the same WP_MATCHING scan twice.
 */
export interface Probes {
  a: bigint;
  b: bigint;
  c: bigint;
  filter: { category_inverted: bigint; category_mask: bigint; category_anyof_mask: bigint; return_mask: bigint };
  wpFlags: bigint;
}

const probeSpec = fc.record({
    t: target,
    split: fc.integer({ min: 0, max: 1100 }),
    rest: fc.integer({ min: 0, max: 1100 }),
    inverted: lightMask,
    catMask: lightMask,
    anyof: lightMask,
    ret: fc.oneof(fc.constant(0x1ffn), mask),
    wpFlags: fc.constantFrom(1n, 1n, 3n),
  });
type ProbeSpec = typeof probeSpec extends fc.Arbitrary<infer T> ? T : never;

function resolveProbes(maps: MapSpec[], r: ProbeSpec): Probes {
  const a = resolveTarget(maps, r.t).addr;
  return {
    a,
    b: a + BigInt(r.split) * P,
    c: a + BigInt(r.split + r.rest) * P,
    filter: { category_inverted: r.inverted, category_mask: r.catMask, category_anyof_mask: r.anyof, return_mask: r.ret },
    wpFlags: r.wpFlags,
  };
}

/** An output array the size of the harness's, so that no probe is limited by it. */
export const BIG_VEC = 1n << 20n;

export function probeArg(start: bigint, end: bigint, flags: bigint, filter: Probes['filter']): PmScanArg {
  return { size: 96n, flags, start, end, walk_end: 0n, vec: VEC_ADDR, vec_len: BIG_VEC, max_pages: 0n, ...filter };
}

/** How many probe steps end each program, and their order. */
export const PROBE_STEPS = ['ac', 'ab', 'bc', 'wp1', 'wp2'] as const;

/**
 * A generated case: mappings first, usually a userfaultfd registered over some of them and a few
 * touches, then random steps, then the probes.
 */
export interface Case {
  /**
   * system.swap (absent: off), system.hugetlb_pages (absent: as many as needed) and system.thp
   * (absent: madvise).
   */
  system?: { swap: boolean; pool2M: number; pool1G: number; thp?: 'madvise' | 'always' | 'never' };
  maps: MapSpec[];
  uffd: { features: bigint; registered: boolean[]; mode: bigint } | null;
  steps: StepSpec[];
  probes: ProbeSpec;
}

export const caseArb: fc.Arbitrary<Case> = fc.record({
  system: fc.record({
    swap: fc.oneof({ weight: 2, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    pool2M: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 8 }) }, { weight: 1, arbitrary: fc.constant(64) }),
    pool1G: fc.constantFrom(0, 1, 1, 2),
    thp: fc.constantFrom<'madvise' | 'always' | 'never'>('madvise', 'madvise', 'madvise', 'madvise', 'madvise', 'always', 'never'),
  }),
  maps: fc.array(mapSpec, { minLength: 1, maxLength: 4 }),
  uffd: fc.oneof(
    { weight: 1, arbitrary: fc.constant(null) },
    {
      weight: 3,
      arbitrary: fc.record({
        features: fc.oneof({ weight: 5, arbitrary: fc.constant(0xa000n) }, { weight: 1, arbitrary: fc.constantFrom(...FEATURES) }),
        registered: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        mode: fc.oneof({ weight: 8, arbitrary: fc.constant(2n) }, { weight: 1, arbitrary: fc.constantFrom(...MODES) }),
      }),
    },
  ),
  steps: fc.array(stepSpec, { minLength: 1, maxLength: 20 }),
  probes: probeSpec,
});

export function caseSteps(c: Case): RawStep[] {
  const out: RawStep[] = [];
  c.maps.forEach((m) => {
    out.push({ op: { op: 'mmap', addr: ANCHORS[m.anchor], size: mapSize(m), kind: m.kind ?? 'anon', prot: m.prot }, mayFail: true });
    if (m.hugepage) out.push({ op: { op: 'madvise', addr: ANCHORS[m.anchor], size: mapSize(m), advice: 'hugepage' }, mayFail: true });
  });
  if (c.uffd) {
    out.push({ op: { op: 'uffd_open', features: c.uffd.features }, mayFail: true });
    c.maps.forEach((m, i) => {
      // (a hugetlb registration needs whole huge pages: the mapping's rounded size)
      const h = hugeSizeOf(m.kind);
      const size = h ? ((mapSize(m) + h - 1n) / h) * h : mapSize(m);
      if (c.uffd!.registered[i]) out.push({ op: { op: 'uffd_register', addr: ANCHORS[m.anchor], size, mode: c.uffd!.mode }, mayFail: true });
    });
  }
  for (const s of c.steps) out.push(resolveStep(c.maps, s));
  return out;
}

/** Whether THP may be used somewhere in the case's program. */
export function caseHasThp(c: Case): boolean {
  if (c.system?.thp === 'never') return false;
  if (c.system?.thp === 'always') return true;
  return c.maps.some((m) => m.hugepage) || c.steps.some((s) => s.kind === 'madvise' && s.advice === 'hugepage');
}

export function caseProgram(c: Case): Program {
  const probes = resolveProbes(c.maps, c.probes);
  const ops: RawStep[] = [
    ...caseSteps(c),
    { op: { op: 'pagemap_scan', arg: probeArg(probes.a, probes.c, 0n, probes.filter) }, mayFail: false },
    { op: { op: 'pagemap_scan', arg: probeArg(probes.a, probes.b, 0n, probes.filter) }, mayFail: false },
    { op: { op: 'pagemap_scan', arg: probeArg(probes.b, probes.c, 0n, probes.filter) }, mayFail: false },
    { op: { op: 'pagemap_scan', arg: probeArg(probes.a, probes.c, probes.wpFlags, { ...probes.filter, return_mask: probes.filter.return_mask | 3n }) }, mayFail: false },
    { op: { op: 'pagemap_scan', arg: probeArg(probes.a, probes.c, probes.wpFlags, { ...probes.filter, return_mask: probes.filter.return_mask | 3n }) }, mayFail: false },
  ];
  const steps: Step[] = ops.map((s, i) => ({ index: i + 1, op: s.op, mayFail: s.mayFail, where: { file: 'property.yaml', line: i + 1, col: 1 } }));
  const system: Program['system'] = { swap: c.system?.swap ?? false, thp: c.system?.thp ?? 'madvise' };
  if (c.system && c.maps.some((m) => m.kind?.startsWith('hugetlb'))) system.hugetlbPages = { '2M': c.system.pool2M, '1G': c.system.pool1G };
  return { name: 'property', file: 'property.yaml', kernel: '6.18.44', system, steps, names: new Map() };
}
