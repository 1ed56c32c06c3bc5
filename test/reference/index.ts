// The reference executor: runs a resolved scenario Program on the reference model and returns
// what simulate() returns (StepResult per step, why it stopped) plus a state dump.
//
//   import { referenceRun } from './reference';
//   const ref = referenceRun(program);
//   ref.results; ref.stopped; ref.dump(start, end); ref.notes
//
// `notes` lists the kernel rules the run exercised that the engine is known to get wrong
// (see known-bugs.ts): a difference with the engine in a run that has such a note is explained.
//
// Modelled: private anonymous memory (zero page, markers, guards, VMA split/merge, page-table
// reclaim), swap (system.swap: pageout to swap entries that keep the uffd-wp bit, swap-in of the
// faulting page, MADV_FREE of swap entries), hugetlb (kinds hugetlb, hugetlb-shared, hugetlb-1g:
// per huge page, holes by table level, markers, the pool with its reservations, the alignment
// rules of mmap, munmap, mprotect, madvise and userfaultfd, MADV_REMOVE), shmem (kinds shared-anon,
// memfd-private, memfd-shared: the page cache per file, fault-around, COW, markers kept by zaps,
// MADV_PAGEOUT and MADV_REMOVE), anonymous THP (system.thp always / madvise / never: PMD-mapped
// THPs and the huge zero page from faults, PAGEMAP_SCAN's PMD path with its WP in place or split,
// __split_huge_pmd() at VMA splits, partial zaps and change_protection(), on a write to a uffd-wp
// THP; split_folio() by MADV_FREE / MADV_COLD / MADV_PAGEOUT with the zero-filled subpages mapped
// to the zero page; pageout of a whole THP as split then reclaim). Anything else (MADV_COLLAPSE
// outside hugetlb, MADV_PAGEOUT of a lazy-free PTE-mapped large folio mapped whole in the range,
// file/shmem THP, disk files, PFNMAP,
// other kernel profiles than 6.18.44 and 6.18.0) stops as 'notmodelled'.

import type { Op, Program, Step, StepResult } from '../../src/scenario/program';
import type { ErrnoName } from '../../src/uapi';
import { dumpPages, type StateRun } from './dump';
import { userAccess, type FaultResult } from './fault';
import { doMadvise } from './madvise';
import { NotModelled, PAGE_SIZE, RefMm, TASK_SIZE } from './mm';
import { doMmap, doMprotect, doMunmap, type RefKind } from './mmap';
import { doPagemapScan, type ScanSemantics } from './pagemap-scan';
import {
  userfaultfdApi,
  userfaultfdRegister,
  userfaultfdRelease,
  userfaultfdUnregister,
  userfaultfdWriteprotect,
  type UffdCtx,
} from './userfaultfd';
import type { KnownBug } from './known-bugs';

export interface RefStop {
  step: number;
  /** 'failed': a step failed without may_fail; 'userfault': the step would wait for a
   * userfaultfd reader, or never returns (a loop in the kernel); 'notmodelled': outside what the
   * reference models. */
  reason: 'failed' | 'userfault' | 'notmodelled';
  message: string;
}

export interface RefRun {
  results: StepResult[];
  stopped?: RefStop;
  mm: RefMm;
  dump(start: number, end: number): StateRun[];
  notes: Map<KnownBug, number[]>;
}

const SEMANTICS: Record<string, ScanSemantics> = {
  '6.18.44': { noneIsWritten: true, holeIsWrittenInUffdWp: true, hugetlbWpWholeSize: true, hugetlbHoleWp: true },
  '6.18.0': { noneIsWritten: false, holeIsWrittenInUffdWp: false, hugetlbWpWholeSize: false, hugetlbHoleWp: false },
};

const REF_KINDS = new Set<string>(['anon', 'hugetlb', 'hugetlb-shared', 'hugetlb-1g', 'shared-anon', 'memfd-private', 'memfd-shared']);

class Stop extends Error {
  constructor(
    readonly reason: RefStop['reason'],
    message: string,
  ) {
    super(message);
  }
}

/** The simulated task: its mm, its userfaultfd (if open), the system it runs on. */
class RefProcess {
  readonly mm = new RefMm();
  uffd: UffdCtx | null = null;

  constructor(
    readonly program: Program,
    readonly sem: ScanSemantics,
  ) {
    this.mm.swap = program.system.swap;
    this.mm.thpMode = program.system.thp;
    // system.hugetlb_pages; a size it does not give has "as many as the scenario needs".
    const pools = program.system.hugetlbPages ?? {};
    if (pools['2M'] !== undefined) this.mm.pools['2M'].total = pools['2M'];
    if (pools['1G'] !== undefined) this.mm.pools['1G'].total = pools['1G'];
  }

  run(): RefRun {
    const results: StepResult[] = [];
    let stopped: RefStop | undefined;
    for (const step of stopped ? [] : this.program.steps) {
      let r: StepResult;
      this.mm.step = step.index;
      try {
        r = this.execute(step);
      } catch (e) {
        if (e instanceof NotModelled) {
          stopped = { step: step.index, reason: 'notmodelled', message: e.message };
          break;
        }
        if (!(e instanceof Stop)) throw e;
        stopped = { step: step.index, reason: e.reason, message: e.message };
        break;
      }
      results.push(r);
      if (r.errno && !(step.op.op === 'pagemap_scan' || step.mayFail || step.expect?.errno === r.errno)) {
        stopped = { step: step.index, reason: 'failed', message: `${step.op.op} failed with ${r.errno}` };
        break;
      }
    }
    const mm = this.mm;
    return { results, stopped, mm, dump: (s, e) => dumpPages(mm, s, e), notes: this.mm.notes };
  }

  execute(step: Step): StepResult {
    const op = step.op;
    if (op.op === 'pagemap_scan') {
      const r = doPagemapScan(this.mm, this.uffd, op.arg, this.sem);
      return {
        step: step.index,
        op: 'pagemap_scan',
        ret: BigInt(r.ret),
        errno: r.errno,
        walk_end: r.walkEnd === null ? null : BigInt(r.walkEnd),
        regions: r.regions.map((g) => ({ start: BigInt(g.start), end: BigInt(g.end), categories: g.categories })),
      };
    }
    const errno = this.syscall(op, step.mayFail);
    return { step: step.index, op: op.op, ret: errno ? -1n : 0n, errno };
  }

  syscall(op: Exclude<Op, { op: 'pagemap_scan' }>, mayFail: boolean): ErrnoName | null {
    switch (op.op) {
      case 'mmap':
        if (!REF_KINDS.has(op.kind)) throw new Stop('notmodelled', `mmap kind ${op.kind}`);
        return doMmap(this.mm, op.addr, op.size, op.prot, op.kind as RefKind);
      case 'munmap': {
        const r = doMunmap(this.mm, this.uffd, op.addr, op.size);
        if (r === 'userfault') throw new Stop('userfault', 'munmap waits for a reader of UFFD_EVENT_UNMAP');
        return r;
      }
      case 'mprotect':
        return doMprotect(this.mm, this.uffd, op.addr, op.size, op.prot);
      case 'madvise': {
        const r = doMadvise(this.mm, this.uffd, op.addr, op.size, op.advice);
        if (r === 'userfault') throw new Stop('userfault', `madvise ${op.advice} waits for a userfaultfd reader`);
        if (r === 'hang') throw new Stop('userfault', `madvise ${op.advice} restarts for ever`);
        if (r === 'notmodelled') throw new Stop('notmodelled', `madvise ${op.advice}`);
        return r;
      }
      case 'read':
      case 'write':
        return this.touch(op.addr, op.size, op.stride, op.op === 'write', mayFail);
      case 'uffd_open': {
        // The harness closes the previous descriptor first, then userfaultfd() + UFFDIO_API.
        if (this.uffd) userfaultfdRelease(this.mm, this.uffd);
        const { ctx, errno } = userfaultfdApi(op.features);
        this.uffd = ctx;
        return errno;
      }
      case 'uffd_close':
        if (!this.uffd) return 'EBADF'; // close(-1)
        userfaultfdRelease(this.mm, this.uffd);
        this.uffd = null;
        return null;
      case 'uffd_register':
        if (!this.uffd) return 'EBADF';
        return userfaultfdRegister(this.mm, this.uffd, op.addr, op.size, op.mode);
      case 'uffd_unregister':
        return this.uffd ? userfaultfdUnregister(this.mm, this.uffd, op.addr, op.size) : 'EBADF';
      case 'uffd_writeprotect':
        return this.uffd ? userfaultfdWriteprotect(this.mm, this.uffd, op.addr, op.size, op.wp) : 'EBADF';
      case 'clear_refs':
        return clearRefs(op.value);
    }
  }

  /**
   * The harness's touch loop: one byte at addr and every stride after it below addr+size; a
   * fault is the result (the first one), and without may_fail it ends the loop. Touches of the
   * same page in a row are one touch (the second cannot change what the first did), and the
   * touches that fall in a gap are all SIGSEGV and change nothing: they are skipped together.
   * More than 2^20 separate pages is refused as "not modelled", as the engine does.
   */
  touch(addr: bigint, size: bigint, stride: bigint, write: boolean, mayFail: boolean): ErrnoName | null {
    if (stride === 0n) return 'EINVAL';
    if (size === 0n) return null;
    const P = BigInt(PAGE_SIZE);
    const count = (size - 1n) / stride + 1n; // touches
    const last = addr + (count - 1n) * stride;
    if (stride >= P && count - 1n > 1n << 20n) throw new Stop('notmodelled', 'more than 2^20 separate pages touched in one step');
    // The k-th touch is at addr + k*stride; its page:
    const pageAt = (k: bigint): bigint => ((addr + k * stride) / P) * P;
    let first: ErrnoName | null = null;
    let k = 0n;
    let prevPage = -1n;
    while (k < count) {
      const page = pageAt(k);
      if (page === prevPage) {
        k = stride < P ? ((page + P - addr + stride - 1n) / stride) : k + 1n; // the first touch on the next page
        continue;
      }
      prevPage = page;
      const vma = page < BigInt(TASK_SIZE) ? this.mm.vmaLookup(Number(page)) : undefined;
      if (!vma) {
        first ??= 'SIGSEGV';
        if (!mayFail) break;
        // Skip to the first touch at or after the next VMA (if any).
        const next = page < BigInt(TASK_SIZE) ? this.mm.findVma(Number(page)) : undefined;
        if (!next || BigInt(next.start) > last) break;
        k = BigInt(next.start) <= addr ? k + 1n : (BigInt(next.start) - addr + stride - 1n) / stride;
        continue;
      }
      const r: FaultResult = userAccess(this.mm, this.uffd, Number(page), write);
      if (r === 'userfault') throw new Stop('userfault', `the ${write ? 'write' : 'read'} at 0x${page.toString(16)} waits for a userfaultfd reader`);
      if (r !== 'ok') {
        first ??= r;
        if (!mayFail) break;
      }
      k = stride < P ? (page + P - addr + stride - 1n) / stride : k + 1n;
      if (vma.huge) {
        // The other touches of this huge page repeat what the first did (no fault, or the same
        // failure): go on with the first touch of the next huge page.
        const size = BigInt(vma.huge.size);
        const slotEnd = page - ((page - BigInt(vma.start)) % size) + size;
        const kNext = (slotEnd - addr + stride - 1n) / stride;
        if (kNext > k) k = kNext;
      }
    }
    return first;
  }
}

/** clear_refs_write(): the harness writes "%llu\n"; the kernel reads at most 12 characters. */
function clearRefs(value: bigint): ErrnoName | null {
  const text = `${value}\n`.slice(0, 12).trim();
  const v = BigInt(text);
  if (v > 0x7fffffffn) return 'ERANGE'; // kstrtoint()
  if (v < 1n || v > 5n) return 'EINVAL';
  return null; // 1-3: accessed bits, 4: soft-dirty (not compiled in), 5: hiwater: nothing visible
}

export function referenceRun(program: Program): RefRun {
  const sem = SEMANTICS[program.kernel];
  if (!sem) {
    const mm = new RefMm();
    return { results: [], stopped: { step: 0, reason: 'notmodelled', message: `kernel ${program.kernel}` }, mm, dump: (s, e) => dumpPages(mm, s, e), notes: new Map<KnownBug, number[]>() };
  }
  return new RefProcess(program, sem).run();
}

export { dumpPages };
export type { StateRun };
