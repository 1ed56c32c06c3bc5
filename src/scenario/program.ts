// A scenario after parsing: every address, size and mask resolved to a u64 (bigint).
// This is what both executors consume: the simulated process (src/process.ts) and the real
// kernel (src/kernel/). Nothing here refers back to YAML, except `where` for messages.

import type { ErrnoName, PmScanArg } from '../uapi';
import type { HangWhy } from '../mm/hang';

export const MEMORY_KINDS = [
  'anon',
  'shared-anon',
  'file-private',
  'file-shared',
  'memfd-private',
  'memfd-shared',
  'hugetlb',
  'hugetlb-shared',
  'hugetlb-1g',
  'pfnmap',
] as const;
export type MemoryKind = (typeof MEMORY_KINDS)[number];

export const ADVICES = {
  normal: 0,
  random: 1,
  sequential: 2,
  willneed: 3,
  dontneed: 4,
  free: 8,
  remove: 9,
  dontfork: 10,
  dofork: 11,
  hugepage: 14,
  nohugepage: 15,
  cold: 20,
  pageout: 21,
  'populate-read': 22,
  'populate-write': 23,
  collapse: 25,
  'guard-install': 102,
  'guard-remove': 103,
} as const;
export type Advice = keyof typeof ADVICES;

export type Op =
  | { op: 'mmap'; addr: bigint; size: bigint; kind: MemoryKind; prot: number; name?: string }
  | { op: 'munmap'; addr: bigint; size: bigint }
  | { op: 'mprotect'; addr: bigint; size: bigint; prot: number }
  | { op: 'madvise'; addr: bigint; size: bigint; advice: Advice }
  | { op: 'read' | 'write'; addr: bigint; size: bigint; stride: bigint }
  | { op: 'uffd_open'; features: bigint }
  | { op: 'uffd_close' }
  | { op: 'uffd_register'; addr: bigint; size: bigint; mode: bigint }
  | { op: 'uffd_unregister'; addr: bigint; size: bigint }
  | { op: 'uffd_writeprotect'; addr: bigint; size: bigint; wp: boolean }
  | { op: 'clear_refs'; value: bigint }
  /** `arg.vec` is VEC_ADDR unless the scenario passed `vec: null` (then 0). */
  | { op: 'pagemap_scan'; arg: PmScanArg };

export type OpName = Op['op'];

/** Where a step came from, for messages: `file:line:col`. */
export interface Where {
  file: string;
  line: number;
  col: number;
}

/** An expected region: [start, end, categories bitmask]. */
export interface ExpectedRegion {
  start: bigint;
  end: bigint;
  categories: number;
}

export interface Expectation {
  ret?: bigint;
  errno?: ErrnoName | null;
  walk_end?: bigint | null;
  regions?: ExpectedRegion[];
  ok?: true;
  /** The step blocks on userfaultfd with this message (address; flags by name, in bit order, when given). */
  userfault?: { address: bigint; flags?: ('WRITE' | 'WP' | 'MINOR')[] };
  /** The step never returns because the kernel loops (or deadlocks): why, and for a touch the byte (when given). */
  hang?: { why: HangWhy; address?: bigint };
  where: Where;
}

export interface Step {
  /** 1-based, as in the file. */
  index: number;
  op: Op;
  mayFail: boolean;
  expect?: Expectation;
  where: Where;
}

/** read_ahead_kb of the disk under /var/tmp on the machines here (vda); a plain disk has 128. */
export const DEFAULT_READ_AHEAD_KB = 8192;

export interface SystemConfig {
  swap: boolean;
  thp: 'always' | 'madvise' | 'never';
  hugetlbPages?: { '2M'?: number; '1G'?: number };
  /** read_ahead_kb of the disk behind disk-file mappings (default DEFAULT_READ_AHEAD_KB). */
  readAheadKb?: number;
}

export interface Program {
  name: string;
  description?: string;
  file: string;
  kernel: string;
  system: SystemConfig;
  steps: Step[];
  /** Mapping names as given by `mmap.name`, to their start address (for printing). */
  names: Map<string, bigint>;
}

/**
 * The fixed user address of the output array of a scan (`vec`), both in the real-kernel helper
 * and in the emulator: access_ok(vec, vec_len * 24) depends on it. It lies outside the address
 * range scenarios are meant to use (see scenario-format.md).
 */
export const VEC_ADDR = 0x600000000000n;
/**
 * The struct pm_scan_arg of a scan step whose fields are omitted (scenario-format.md): a zeroed
 * struct, except size (96), vec (the output array at VEC_ADDR) and vec_len (1024).
 */
export function scanArg(fields: Partial<PmScanArg> = {}): PmScanArg {
  return {
    size: 96n,
    flags: 0n,
    start: 0n,
    end: 0n,
    walk_end: 0n,
    vec: VEC_ADDR,
    vec_len: 1024n,
    max_pages: 0n,
    category_inverted: 0n,
    category_mask: 0n,
    category_anyof_mask: 0n,
    return_mask: 0n,
    ...fields,
  };
}

/** How many page_region entries the real-kernel helper maps at VEC_ADDR. */
export const VEC_CAPACITY = 1n << 20n;

/** The result of one step, as `run --json` prints it. */
export interface StepResult {
  step: number;
  op: OpName;
  ret: bigint;
  errno: ErrnoName | null;
  /** pagemap_scan only; null when the kernel does not write it back. */
  walk_end?: bigint | null;
  /** pagemap_scan only: what was copied to the user array. */
  regions?: { start: bigint; end: bigint; categories: number }[];
  /**
   * The step never returned: a fault blocked in handle_userfault(), waiting for a userfaultfd
   * reader the scenario does not have, with this UFFD_EVENT_PAGEFAULT message queued
   * (arg.pagefault.address, and flags by name: WRITE, WP, MINOR). ret is -1, errno null.
   */
  userfault?: { address: bigint; flags: ('WRITE' | 'WP' | 'MINOR')[] };
  /**
   * The step never returned because the kernel does something for ever: `fault-loop` (the fault
   * is never resolved and is taken again), `restart-loop` (the system call redoes its work),
   * `deadlock` (the thread sleeps on a lock it holds). `address`: for a read or write, the byte
   * being touched. ret is -1, errno null; nothing after it runs.
   */
  hang?: { why: HangWhy; address?: bigint };
}
