// randomProgram(seed): a random scenario Program for differential testing against the real
// kernel: the mapping kinds asked for (anon by default; hugetlb within a pool budget), THP steps
// with `thp`, swap with `swap` (the machine must match: see machineSetup()).
//
// Everything lives in a 4 GiB window at 0x100000000000 (four 1 GiB blocks), far from the replay
// harness's own mappings, so no step and no scan can reach them. Every step but the scans carries
// may_fail, so one failing system call is a result, not the end of the scenario.
//
// The generator seldom emits a touch that could block on the real kernel (the step's result is
// then the userfaultfd message, and the program ends there): it keeps a conservative picture of
// the userfaultfd state (see Hazards) and mostly drops a read/write/populate that could fault into
// a MISSING or MINOR registration, or that could write to a page that may carry a uffd-wp bit or
// marker in a VMA registered for synchronous WP.

import { Rng } from './rng';
import type { Advice, MemoryKind, Op, Program, Step } from '../scenario/program';
import { scanArg, VEC_ADDR } from '../scenario/program';
import {
  PAGE_IS_FILE,
  PAGE_IS_GUARD,
  PAGE_IS_HUGE,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SOFT_DIRTY,
  PAGE_IS_SWAPPED,
  PAGE_IS_WPALLOWED,
  PAGE_IS_WRITTEN,
  PM_SCAN_CHECK_WPASYNC,
  PM_SCAN_WP_MATCHING,
  TASK_SIZE_MAX,
  U64_MAX,
  UFFD_FEATURES,
  UFFD_REGISTER_MODES,
  type PmScanArg,
} from '../uapi';

export const P = 4096;
export const PMD = 2 * 1024 * 1024;
export const GIB = 1024 * 1024 * 1024;
/** The address window of random programs: [WINDOW_START, WINDOW_END). */
export const WINDOW_START = 0x100000000000;
export const WINDOW_END = 0x100100000000;
/** The most bytes one read/write step touches (one per stride). */
const MAX_TOUCHES = 4096;

export interface RandomProgramOptions {
  /** Steps after the initial mmaps: at least this many... */
  minSteps?: number;
  /** ...and at most this many (default 6..40). */
  maxSteps?: number;
  /** Kernel profile of the program (default 6.18.44). */
  kernel?: string;
  /**
   * Mapping kinds to draw from (default: anon only). Any of FUZZ_KINDS; the hugetlb kinds need a
   * pool (HUGETLB_BUDGET per program in flight). pfnmap needs a device and is not generated.
   */
  kinds?: readonly MemoryKind[];
  /** Also exercise transparent huge pages: MADV_HUGEPAGE/NOHUGEPAGE/COLLAPSE, multi-MiB mappings. */
  thp?: boolean;
  /** Programs assume a swap device (`system.swap: on`): MADV_PAGEOUT swaps anonymous pages out. */
  swap?: boolean;
}

/** The kinds randomProgram can map. */
export const FUZZ_KINDS: readonly MemoryKind[] = [
  'anon',
  'shared-anon',
  'memfd-private',
  'memfd-shared',
  'file-private',
  'file-shared',
  'hugetlb',
  'hugetlb-shared',
  'hugetlb-1g',
];

const HUGETLB_KINDS: readonly MemoryKind[] = ['hugetlb', 'hugetlb-shared', 'hugetlb-1g'];

/**
 * The most hugetlb memory one program maps, in pages of each size (mmaps are counted whether they
 * succeed or not, munmaps never give any back). A pool of this much per program in flight means
 * no hugetlb mmap or fault runs out of pages, on the kernel or in the emulator.
 */
export const HUGETLB_BUDGET = { '2M': 8, '1G': 1 } as const;

const ALL_CATEGORIES = 0x1ff;
/** Category bits weighted by how interesting they are for anonymous memory. */
const CATEGORY_CHOICES: readonly (readonly [number, number])[] = [
  [4, PAGE_IS_WRITTEN],
  [3, PAGE_IS_PRESENT],
  [3, PAGE_IS_SWAPPED],
  [3, PAGE_IS_WPALLOWED],
  [2, PAGE_IS_PFNZERO],
  [2, PAGE_IS_GUARD],
  [1, PAGE_IS_HUGE],
  [1, PAGE_IS_FILE],
  [1, PAGE_IS_SOFT_DIRTY],
];

const FEATURE_SETS: readonly (readonly [number, bigint])[] = [
  [5, BigInt(UFFD_FEATURES.WP_ASYNC | UFFD_FEATURES.WP_UNPOPULATED)],
  [2, BigInt(UFFD_FEATURES.WP_ASYNC)],
  [2, 0n],
  [1, BigInt(UFFD_FEATURES.WP_UNPOPULATED)],
];

const MODES = { WP: UFFD_REGISTER_MODES.WP, MISSING: UFFD_REGISTER_MODES.MISSING, MINOR: UFFD_REGISTER_MODES.MINOR } as const;

// ---- a set of half-open intervals [a, b), kept sorted and disjoint ---------------------------------

export class Intervals {
  private runs: [number, number][] = [];

  add(a: number, b: number): void {
    if (b <= a) return;
    const out: [number, number][] = [];
    let [lo, hi] = [a, b];
    for (const [s, e] of this.runs) {
      if (e < lo || s > hi) out.push([s, e]);
      else {
        lo = Math.min(lo, s);
        hi = Math.max(hi, e);
      }
    }
    out.push([lo, hi]);
    this.runs = out.sort((x, y) => x[0] - y[0]);
  }

  remove(a: number, b: number): void {
    if (b <= a) return;
    const out: [number, number][] = [];
    for (const [s, e] of this.runs) {
      if (e <= a || s >= b) out.push([s, e]);
      else {
        if (s < a) out.push([s, a]);
        if (e > b) out.push([b, e]);
      }
    }
    this.runs = out;
  }

  clear(): void {
    this.runs = [];
  }

  intersects(a: number, b: number): boolean {
    return this.runs.some(([s, e]) => s < b && e > a);
  }

  /** The parts of [a, b) inside this set. */
  within(a: number, b: number): [number, number][] {
    return this.runs.filter(([s, e]) => s < b && e > a).map(([s, e]) => [Math.max(s, a), Math.min(e, b)]);
  }
}

// ---- the generator --------------------------------------------------------------------------------

interface Mapping {
  name: string;
  addr: number;
  size: number;
  kind: MemoryKind;
}

/**
 * Hazards: what could make a touch block on the real kernel. All conservative (a superset).
 * - missing: ranges registered (or attempted) with MODE_MISSING on the current context: a fault
 *   on a none/marker entry there waits for a reader that does not exist.
 * - syncWp: ranges registered (or attempted) with MODE_WP on a context without WP_ASYNC;
 * - maybeWp: ranges that may hold uffd-wp bits or markers (any UFFDIO_WRITEPROTECT, any
 *   WP_MATCHING scan, ever: stale bits survive re-registration, Q20).
 *   A write to syncWp ∩ maybeWp may block.
 * Closing the context (uffd_close, or uffd_open which closes the previous one) drops the
 * registrations; munmap drops them for its range.
 * - notAnon: ranges ever mapped with a file or shmem kind. MADV_GUARD_INSTALL over uffd-wp
 *   markers there never returns (the zap keeps the markers and the call restarts, spec Q21), so
 *   it is not generated over notAnon ∩ maybeWp.
 */
class Generator {
  readonly rng: Rng;
  readonly ops: Op[] = [];
  readonly maps: Mapping[] = [];
  private named = 0;
  /** The features of the open context; null when none is open (or opening failed). */
  private ctx: bigint | null = null;
  private readonly missing = new Intervals();
  private readonly syncWp = new Intervals();
  private readonly maybeWp = new Intervals();
  private readonly notAnon = new Intervals();
  private readonly kinds: readonly MemoryKind[];
  private readonly thp: boolean;
  /** Ranges registered (or attempted) in WP mode on the current context: where WP ops are interesting. */
  private readonly wpRegistered: [number, number][] = [];
  private readonly swap: boolean;
  /** hugetlb pages of each size still allowed by HUGETLB_BUDGET. */
  private readonly hugetlbLeft: { '2M': number; '1G': number } = { ...HUGETLB_BUDGET };

  constructor(seed: number, opts: RandomProgramOptions) {
    this.rng = new Rng(seed);
    this.kinds = opts.kinds?.length ? opts.kinds : ['anon'];
    for (const k of this.kinds) if (!FUZZ_KINDS.includes(k)) throw new Error(`randomProgram cannot map kind ${k}`);
    this.thp = opts.thp ?? false;
    this.swap = opts.swap ?? false;
  }

  private push(op: Op): void {
    this.ops.push(op);
  }

  // -- sizes and places

  private mappingSize(kind: MemoryKind): number {
    const r = this.rng;
    if (kind === 'hugetlb-1g') return GIB;
    // hugetlb: mostly whole huge pages; now and then a length the kernel rounds up.
    if (HUGETLB_KINDS.includes(kind)) return r.chance(0.85) ? r.int(1, 3) * PMD : r.int(1, 511) * P;
    // With THP: whole 2 MiB blocks, so that faults and MADV_COLLAPSE can make huge pages.
    if (this.thp && r.chance(0.4)) return r.int(1, 4) * PMD + (r.chance(0.3) ? r.int(1, 64) * P : 0);
    return (
      r.weighted<() => number>([
        [2, () => 1],
        [5, () => r.int(2, 16)],
        [3, () => r.int(17, 200)],
        [1, () => 511],
        [2, () => 512],
        [1, () => 513],
        [2, () => 1024],
        [2, () => r.int(300, 1100)],
        [1, () => r.int(1024, 1024 + 300)],
      ])() * P
    );
  }

  private prot(): number {
    return this.rng.weighted([
      [16, 3],
      [2, 1],
      [1, 0],
      [1, 7],
    ]);
  }

  /** Where the next mapping goes, relative to the previous one (or anywhere in the window). */
  private placement(prev: Mapping | undefined, size: number, kind: MemoryKind): number {
    const r = this.rng;
    if (HUGETLB_KINDS.includes(kind)) {
      // hugetlb needs an address aligned to its page size (else EINVAL, tried now and then).
      const align = kind === 'hugetlb-1g' ? GIB : PMD;
      const near = prev ? Math.ceil((prev.addr + prev.size) / align) * align : WINDOW_START + r.int(0, 3) * GIB + r.int(0, 40) * PMD;
      const addr = (r.chance(0.5) || !prev ? near : WINDOW_START + r.int(0, 3) * GIB + (align === PMD ? r.int(0, 511) * PMD : 0)) +
        (r.chance(0.05) ? r.int(1, 511) * P : 0);
      return Math.min(addr, Math.floor((WINDOW_END - Math.max(size, align)) / align) * align);
    }
    const anywhere = (): number => {
      const gib = r.int(0, 3);
      // Now and then right below a 1 GiB boundary, so that mappings cross it.
      const block = r.chance(0.15) ? r.int(509, 511) : r.int(0, 40);
      const offset = r.chance(0.2) ? r.int(1, 511) * P : 0;
      return WINDOW_START + gib * GIB + block * PMD + offset;
    };
    if (!prev) return Math.min(anywhere(), WINDOW_END - size);
    const end = prev.addr + prev.size;
    const addr = r.weighted<() => number>([
      [3, () => end], // adjacent: VMAs may merge
      [3, () => end + r.int(1, 16) * P], // a small gap, often in the same 2 MiB block
      [2, () => Math.ceil(end / PMD) * PMD + r.int(0, 1) * PMD], // the next 2 MiB block(s)
      [1, () => prev.addr + r.int(0, Math.max(0, prev.size / P - 1)) * P], // overlap: EEXIST
      [2, anywhere],
    ])();
    return Math.min(addr, WINDOW_END - size);
  }

  private newName(): string {
    this.named++;
    return `m${this.named}`;
  }

  /** A kind to map: anon 40% of the time, a hugetlb kind only while the budget lasts. */
  private kind(): MemoryKind {
    const r = this.rng;
    let kind = this.kinds.length === 1 ? this.kinds[0]! : r.chance(0.4) ? 'anon' : r.pick(this.kinds);
    if (HUGETLB_KINDS.includes(kind) && this.hugetlbLeft[kind === 'hugetlb-1g' ? '1G' : '2M'] === 0) kind = 'anon';
    return kind;
  }

  /** Count a hugetlb mmap against the budget; false (and nothing counted) when it does not fit. */
  private spendHugetlb(kind: MemoryKind, size: number): boolean {
    if (!HUGETLB_KINDS.includes(kind)) return true;
    const pool = kind === 'hugetlb-1g' ? '1G' : '2M';
    const pages = Math.ceil(size / (pool === '1G' ? GIB : PMD));
    if (pages > this.hugetlbLeft[pool]) return false;
    this.hugetlbLeft[pool] -= pages;
    return true;
  }

  mmap(prev?: Mapping): void {
    let kind = this.kind();
    let size = this.mappingSize(kind);
    if (!this.spendHugetlb(kind, size)) {
      kind = 'anon';
      size = this.mappingSize(kind);
    }
    const addr = this.placement(prev, size, kind);
    const m = { name: this.newName(), addr, size, kind };
    this.maps.push(m);
    if (kind !== 'anon') this.notAnon.add(addr, addr + size);
    this.push({ op: 'mmap', addr: BigInt(addr), size: BigInt(size), kind, prot: this.prot(), name: m.name });
  }

  /** An existing (or former) mapping. */
  private someMap(): Mapping {
    return this.rng.pick(this.maps);
  }

  /** A page-aligned range [a, b) in and around the mappings, inside the window. */
  private range(): [number, number] {
    const r = this.rng;
    const m = this.someMap();
    const pages = m.size / P;
    const end = m.addr + m.size;
    let [a, b] = r.weighted<() => [number, number]>([
      [6, () => [m.addr, end]],
      [
        5,
        () => {
          const s = m.addr + r.int(0, pages - 1) * P;
          return [s, s + r.int(1, Math.max(1, pages)) * P];
        },
      ],
      [
        5,
        () => {
          // Strictly inside the mapping.
          const s = m.addr + r.int(0, pages - 1) * P;
          return [s, s + r.int(1, (end - s) / P) * P];
        },
      ],
      [
        2,
        () => {
          const s = m.addr + r.int(0, pages - 1) * P;
          return [s, s + P];
        },
      ],
      [
        2,
        () => {
          // Whole 2 MiB blocks around part of the mapping.
          const s = Math.floor((m.addr + r.int(0, pages - 1) * P) / PMD) * PMD;
          return [s, s + r.int(1, 2) * PMD];
        },
      ],
      [
        3,
        () => {
          // From inside one mapping to inside another: crosses gaps and VMA boundaries.
          const o = this.someMap();
          const x = m.addr + r.int(0, pages - 1) * P;
          const y = o.addr + r.int(1, o.size / P) * P;
          return x < y ? [x, y] : [y - P, x + P];
        },
      ],
      [2, () => [m.addr - r.int(1, 8) * P, end + r.int(1, 8) * P]],
    ])();
    a = Math.max(WINDOW_START, Math.min(a, WINDOW_END - P));
    b = Math.max(a + P, Math.min(b, WINDOW_END));
    return [a, b];
  }

  // -- hazards

  /** Could touching [a, b) block? */
  private blocks(a: number, b: number, write: boolean): boolean {
    if (this.missing.intersects(a, b)) return true;
    if (!write) return false;
    return this.syncWp.within(a, b).some(([s, e]) => this.maybeWp.intersects(s, e));
  }

  /** Closing the context releases every registration. */
  private dropContext(): void {
    this.ctx = null;
    this.missing.clear();
    this.syncWp.clear();
    this.wpRegistered.length = 0;
  }

  /** A range for a WP-related op: mostly a registered one (or part of it). */
  private wpRange(): [number, number] {
    const r = this.rng;
    if (this.wpRegistered.length === 0 || r.chance(0.3)) {
      const m = this.someMap();
      return r.chance(0.5) ? [m.addr, m.addr + m.size] : this.range();
    }
    const [a, b] = r.pick(this.wpRegistered);
    if (r.chance(0.5)) return [a, b];
    const s = a + r.int(0, (b - a) / P - 1) * P;
    return [s, s + r.int(1, (b - s) / P) * P];
  }

  // -- ops

  touch(): void {
    const r = this.rng;
    const write = r.chance(0.6);
    for (let attempt = 0; attempt < 6; attempt++) {
      const [a0, b] = this.range();
      const a = r.chance(0.15) ? a0 + r.int(1, P - 1) : a0;
      const stride = r.weighted<() => number>([
        [10, () => P],
        [3, () => 2 * P],
        [2, () => r.pick([3, 5, 7, 13, 511, 513]) * P],
        [1, () => r.pick([1000, 2048, 4097, 6000, 12289])],
      ])();
      let size = b - a;
      if (r.chance(0.2)) size = Math.min(r.int(1, P), WINDOW_END - a); // a single touch
      // At most MAX_TOUCHES touches: each touch of a gap is a SIGSEGV (a few microseconds), and a
      // touch of a range across 1 GiB blocks would run long enough to look like a hang on a busy
      // machine (the harness calls a step that gets little CPU "blocked").
      if (size / stride > MAX_TOUCHES) size = MAX_TOUCHES * stride;
      if (size <= 0) continue;
      // Now and then one that may block: the step then ends the program with the uffd message.
      if (this.blocks(a, a + size, write) && !r.chance(0.05)) continue;
      this.push({ op: write ? 'write' : 'read', addr: BigInt(a), size: BigInt(size), stride: BigInt(stride) });
      return;
    }
  }

  madvise(): void {
    const r = this.rng;
    const thp = this.thp ? 1 : 0;
    const advice = r.weighted<Advice>([
      [6 * thp, 'hugepage'],
      [1 * thp, 'nohugepage'],
      [3 * thp, 'collapse'],
      [8, 'dontneed'],
      [4, 'guard-install'],
      [3, 'guard-remove'],
      [2, 'free'],
      [2, 'willneed'],
      [1, 'random'],
      [1, 'normal'],
      [1, 'sequential'],
      [3, 'populate-read'],
      [3, 'populate-write'],
      [1, 'cold'],
      [this.swap ? 6 : 1, 'pageout'],
      [1, 'remove'],
    ]);
    for (let attempt = 0; attempt < 6; attempt++) {
      let [a, b] = this.range();
      if (advice === 'dontneed' && r.chance(0.4)) {
        // Whole 2 MiB blocks: the PTE table may be reclaimed.
        a = Math.floor(a / PMD) * PMD;
        b = Math.max(a + PMD, Math.ceil(b / PMD) * PMD);
        a = Math.max(a, WINDOW_START);
        b = Math.min(b, WINDOW_END);
      }
      if ((advice === 'populate-read' || advice === 'populate-write') && this.blocks(a, b, advice === 'populate-write') && !r.chance(0.05))
        continue;
      // MADV_COLLAPSE faults the missing pages in (a MISSING registration would block it).
      if (advice === 'collapse' && this.blocks(a, b, false)) continue;
      if (advice === 'guard-install' && this.notAnon.within(a, b).some(([s, e]) => this.maybeWp.intersects(s, e))) continue;
      this.push({ op: 'madvise', addr: BigInt(a), size: BigInt(b - a), advice });
      return;
    }
  }

  mprotect(): void {
    const [a, b] = this.range();
    const prot = this.rng.weighted([
      [3, 1],
      [4, 3],
      [2, 0],
    ]);
    this.push({ op: 'mprotect', addr: BigInt(a), size: BigInt(b - a), prot });
  }

  munmap(): void {
    const [a, b] = this.range();
    this.push({ op: 'munmap', addr: BigInt(a), size: BigInt(b - a) });
    // A successful munmap drops registrations: always, for a page-aligned range in the window,
    // unless it would split a hugetlb mapping off its huge-page boundaries (EINVAL).
    if (this.maps.some((m) => HUGETLB_KINDS.includes(m.kind) && m.addr < b && m.addr + m.size > a)) return;
    this.missing.remove(a, b);
    this.syncWp.remove(a, b);
  }

  uffdOpen(): void {
    const features = this.rng.weighted(FEATURE_SETS);
    this.push({ op: 'uffd_open', features });
    // The harness closes the previous context before opening: its registrations are gone.
    this.dropContext();
    this.ctx = features;
  }

  uffdClose(): void {
    this.push({ op: 'uffd_close' });
    this.dropContext();
  }

  uffdRegister(): void {
    const r = this.rng;
    if (this.ctx === null && r.chance(0.6)) this.uffdOpen();
    const m = this.someMap();
    const [a, b] = r.chance(0.5) ? [m.addr, m.addr + m.size] : this.range();
    const mode = r.weighted<number>([
      [8, MODES.WP],
      [1, MODES.MISSING],
      [1, MODES.WP | MODES.MISSING],
      [this.kinds.some((k) => k !== 'anon') ? 1 : 0, MODES.MINOR], // shmem and hugetlb only
      [this.kinds.some((k) => k !== 'anon') ? 1 : 0, MODES.MINOR | MODES.WP],
    ]);
    this.push({ op: 'uffd_register', addr: BigInt(a), size: BigInt(b - a), mode: BigInt(mode) });
    if (this.ctx === null) return; // EBADF
    // A fault there may go to the reader: MISSING on a hole, MINOR on a cached page.
    if (mode & (MODES.MISSING | MODES.MINOR)) this.missing.add(a, b);
    if (mode & MODES.WP && !(this.ctx & BigInt(UFFD_FEATURES.WP_ASYNC))) this.syncWp.add(a, b);
    if (mode & MODES.WP) this.wpRegistered.push([a, b]);
  }

  uffdUnregister(): void {
    const [a, b] = this.wpRange();
    this.push({ op: 'uffd_unregister', addr: BigInt(a), size: BigInt(b - a) });
    // Not relied on: unregister fails for ranges with holes (and stale state is possible).
  }

  uffdWriteprotect(): void {
    const r = this.rng;
    const [a, b] = this.wpRange();
    const wp = r.chance(0.65);
    this.push({ op: 'uffd_writeprotect', addr: BigInt(a), size: BigInt(b - a), wp });
    if (wp) this.maybeWp.add(a, b);
  }

  clearRefs(): void {
    this.push({ op: 'clear_refs', value: BigInt(this.rng.weighted([[4, this.rng.int(1, 5)], [1, 0], [1, 6]])) });
  }

  // -- scans

  private categories(): number {
    const r = this.rng;
    let out = 0;
    const n = r.weighted([
      [5, 1],
      [3, 2],
      [1, 3],
    ]);
    for (let i = 0; i < n; i++) out |= r.weighted(CATEGORY_CHOICES);
    return out;
  }

  scan(): void {
    const r = this.rng;
    const arg: PmScanArg = scanArg({ return_mask: BigInt(ALL_CATEGORIES) });

    // Range: in and around the mappings, sometimes the whole window, sometimes empty.
    let [a, b] = r.weighted<() => [number, number]>([
      [10, () => this.range()],
      [
        3,
        () => {
          const lo = Math.min(...this.maps.map((m) => m.addr));
          const hi = Math.max(...this.maps.map((m) => m.addr + m.size));
          return [Math.max(WINDOW_START, lo - r.int(0, 4) * P), Math.min(WINDOW_END, hi + r.int(0, 4) * P)];
        },
      ],
      [1, () => [WINDOW_START, WINDOW_END]],
      [
        1,
        () => {
          const [s] = this.range();
          return [s, s];
        },
      ],
    ])();
    if (r.chance(0.15) && b < WINDOW_END) b = b - P + r.int(1, P - 1); // unaligned end: rounded up
    arg.start = BigInt(a);
    arg.end = BigInt(b);

    arg.flags = BigInt(
      r.weighted([
        [10, 0],
        [6, PM_SCAN_WP_MATCHING],
        [1, PM_SCAN_CHECK_WPASYNC],
        [2, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC],
      ]),
    );

    const shape = r.weighted<string>([
      [6, 'all'],
      [5, 'filtered'],
      [3, 'written-fast-path'],
      [1, 'return-zero'],
    ]);
    if (shape === 'filtered') {
      if (r.chance(0.7)) arg.category_mask = BigInt(this.categories());
      if (r.chance(0.35)) arg.category_anyof_mask = BigInt(this.categories());
      if (r.chance(0.3)) arg.category_inverted = BigInt(r.chance(0.5) ? this.categories() : Number(arg.category_mask));
      arg.return_mask = BigInt(r.weighted([[5, ALL_CATEGORIES], [3, this.categories()], [1, 0]]));
    } else if (shape === 'written-fast-path') {
      arg.category_mask = BigInt(PAGE_IS_WRITTEN);
      arg.return_mask = BigInt(PAGE_IS_WRITTEN);
    } else if (shape === 'return-zero') {
      arg.return_mask = 0n;
    }

    arg.vec_len = r.weighted<() => bigint>([
      [3, () => 0n],
      [2, () => 1n],
      [3, () => BigInt(r.int(2, 16))],
      [1, () => 511n],
      [1, () => 512n],
      [2, () => 513n],
      [1, () => 600n],
      [6, () => 1024n],
      [1, () => 2048n],
      [1, () => 1n << 30n], // passes access_ok; the harness array holds far more than any result
    ])();
    if (arg.vec_len === 0n && r.chance(0.3)) arg.vec = 0n; // NULL array, no length: valid
    arg.max_pages = r.weighted<() => bigint>([
      [10, () => 0n],
      [2, () => 1n],
      [3, () => BigInt(r.int(2, 40))],
      [1, () => 511n],
      [1, () => 512n],
      [1, () => 513n],
      [1, () => BigInt(r.int(600, 5000))],
      [1, () => U64_MAX],
    ])();

    // Now and then an invalid argument (each kind in the order the kernel checks them, §3).
    if (r.chance(0.08)) {
      r.weighted<() => void>([
        [2, () => (arg.size = r.pick([0n, 88n, 104n]))],
        [2, () => (arg.flags |= r.pick([4n, 8n, 1n << 63n]))],
        [
          2,
          () => {
            const bad = r.pick([0x200n, 0x400n, 1n << 40n]);
            const field = r.pick(['category_inverted', 'category_mask', 'category_anyof_mask', 'return_mask'] as const);
            arg[field] |= bad;
          },
        ],
        [2, () => (arg.start += BigInt(r.int(1, P - 1)))],
        [2, () => (arg.end = arg.start - BigInt(r.int(1, 4) * P))],
        [2, () => (arg.end = r.pick([BigInt(TASK_SIZE_MAX) + 1n, 0x800000000000n, U64_MAX]))],
        [2, () => ((arg.vec = 0n), (arg.vec_len = BigInt(r.int(1, 1024))))],
        [1, () => (arg.vec_len = 1n << 60n)], // vec_len * 24 overflows: EFAULT
      ])();
    }

    if (arg.flags & BigInt(PM_SCAN_WP_MATCHING)) {
      const lo = Number(arg.start);
      this.maybeWp.add(lo, Math.max(lo, Math.min(Number(arg.end < arg.start ? arg.start : arg.end) + P, WINDOW_END)));
    }
    this.push({ op: 'pagemap_scan', arg });
  }

  // -- the program

  build(opts: RandomProgramOptions): void {
    const r = this.rng;
    const n = r.weighted([
      [3, 1],
      [4, 2],
      [2, 3],
      [2, 4],
    ]);
    for (let i = 0; i < n; i++) this.mmap(this.maps[this.maps.length - 1]);

    // Most programs start the way PAGEMAP_SCAN users do: an async-WP context on the heap.
    if (r.chance(0.6)) {
      this.uffdOpen();
      const count = r.int(1, this.maps.length);
      for (let i = 0; i < count; i++) this.uffdRegister();
    }

    const maxSteps = opts.maxSteps ?? Math.max(40, opts.minSteps ?? 0);
    const minSteps = Math.min(opts.minSteps ?? 6, maxSteps);
    const steps = r.int(minSteps, maxSteps);
    for (let i = 0; i < steps; i++) {
      r.weighted<() => void>([
        [30, () => this.scan()],
        [20, () => this.touch()],
        [12, () => this.madvise()],
        [4, () => this.uffdOpen()],
        [7, () => this.uffdRegister()],
        [6, () => this.uffdWriteprotect()],
        [2, () => this.uffdUnregister()],
        [1, () => this.uffdClose()],
        [5, () => this.mprotect()],
        [3, () => this.munmap()],
        [3, () => this.mmap(r.chance(0.5) ? this.someMap() : undefined)],
        [1, () => this.clearRefs()],
      ])();
    }
    // Always end with a full scan of everything: the state the steps left behind.
    this.finalScan();
  }

  private finalScan(): void {
    const lo = Math.min(...this.maps.map((m) => m.addr));
    const hi = Math.max(...this.maps.map((m) => m.addr + m.size));
    this.push({
      op: 'pagemap_scan',
      arg: {
        size: 96n,
        flags: 0n,
        start: BigInt(Math.max(WINDOW_START, lo - PMD)),
        end: BigInt(Math.min(WINDOW_END, hi + PMD)),
        walk_end: 0n,
        vec: VEC_ADDR,
        vec_len: 4096n,
        max_pages: 0n,
        category_inverted: 0n,
        category_mask: 0n,
        category_anyof_mask: 0n,
        return_mask: BigInt(ALL_CATEGORIES),
      },
    });
  }
}

/** The name of the program of a seed (also its default file name). */
export function seedName(seed: number): string {
  return `random-${seed >>> 0}`;
}

/**
 * A random Program for `seed` (a u32; the same seed always gives the same program). Every step
 * but the scans is may_fail. Addresses stay inside [WINDOW_START, WINDOW_END).
 */
export function randomProgram(seed: number, opts: RandomProgramOptions = {}): Program {
  const g = new Generator(seed >>> 0, opts);
  g.build(opts);
  const name = seedName(seed);
  const file = `${name}.yaml`;
  const steps: Step[] = g.ops.map((op, i) => ({
    index: i + 1,
    op,
    mayFail: op.op !== 'pagemap_scan',
    where: { file, line: 0, col: 0 },
  }));
  const names = new Map<string, bigint>();
  for (const op of g.ops) if (op.op === 'mmap' && op.name !== undefined) names.set(op.name, op.addr);
  return {
    name,
    description: `random program, seed ${seed >>> 0}`,
    file,
    kernel: opts.kernel ?? '6.18.44',
    system: { swap: opts.swap ?? false, thp: 'madvise' },
    steps,
    names,
  };
}
