// The simulated task: one mm, at most one userfaultfd, and the system calls a scenario makes.
// Every call returns its errno (null on success); the scan returns its full result.

import { StepTooLarge } from './errors';
import { doMadvise, gupAccessError } from './mm/madvise';
import { accessError, handleMmFault, type FaultOutcome } from './mm/memory';
import { HugetlbNoPage, hugetlbFault, type HugetlbFile } from './mm/hugetlb';
import { KernelHang } from './mm/hang';
import { clearSoftDirty, markSoftDirty } from './mm/clear_refs';
import { hugePageSize, isHugetlb, type Vma } from './mm/vma';
import { vmaThpEnabled } from './mm/huge_memory';
import { MmStruct, roundDown, roundUp } from './mm/mm';
import { doMmap, doMprotect, doMunmap, userRange } from './mm/mmap';
import { isTable } from './mm/pte';
import {
  UserfaultBlocked,
  UserfaultSigbus,
  userfaultMsg,
  uffdioApi,
  uffdioRegister,
  uffdioUnregister,
  uffdioWriteprotect,
  uffdRelease,
  type UffdCtx,
} from './mm/userfaultfd';
import type { KernelProfile } from './profiles';
import type { Advice, MemoryKind, SystemConfig } from './scenario/program';
import { doPagemapScan, type ScanResult } from './scan/scan';
import { PAGE_SIZE, PMD_SIZE, type ErrnoName, type PmScanArg } from './uapi';


/** Touches with a stride above a page cost one run each. */
const MAX_SEPARATE_TOUCHES = 1 << 20;

export class Process {
  readonly mm: MmStruct;
  uffd: UffdCtx | null = null;

  constructor(
    readonly profile: KernelProfile,
    readonly system: SystemConfig,
  ) {
    this.mm = new MmStruct(profile);
    if (system.readAheadKb !== undefined) this.mm.raPages = Math.floor(system.readAheadKb / 4);
  }

  mmap(addr: bigint, size: bigint, kind: MemoryKind, prot: number): ErrnoName | null {
    return doMmap(this.mm, addr, size, kind, prot, (vma) => !isHugetlb(vma) || this.hugetlbPoolHas(vma));
  }

  /**
   * hugetlb_reserve_pages() -> hugetlb_acct_memory(): a mapping reserves its huge pages from the
   * pool at mmap time (a shared one through its new file).
   */
  private hugetlbPoolHas(vma: Vma): boolean {
    const need = vma.hugetlbFile ? vma.hugetlbFile.charged() : (vma.end - vma.start) / hugePageSize(vma);
    return this.hugetlbPoolFree(vma) >= need;
  }

  /**
   * Pages of vma's pool neither in use nor reserved (free_huge_pages - resv_huge_pages): a private
   * VMA holds all its pages (a freed anonymous page gets its reservation back), a shared file
   * what it has cached or reserved, for as long as any VMA maps it. Infinity without a set pool.
   */
  private hugetlbPoolFree(vma: Vma): number {
    const pool = vma.kind === 'hugetlb-1g' ? '1G' : '2M';
    const limit = this.system.hugetlbPages?.[pool];
    if (limit === undefined) return Infinity; // as many as the scenario needs
    const files = new Set<HugetlbFile>();
    let used = 0;
    for (const v of this.mm.vmas) {
      if (!isHugetlb(v) || (v.kind === 'hugetlb-1g') !== (pool === '1G')) continue;
      if (v.hugetlbFile) files.add(v.hugetlbFile);
      else used += (v.end - v.start) / hugePageSize(v);
    }
    for (const f of files) used += f.charged();
    return limit - used;
  }

  munmap(addr: bigint, size: bigint): ErrnoName | null {
    return doMunmap(this.mm, addr, size);
  }

  mprotect(addr: bigint, size: bigint, prot: number): ErrnoName | null {
    return doMprotect(this.mm, addr, size, prot);
  }

  madvise(addr: bigint, size: bigint, advice: Advice): ErrnoName | null {
    if (advice === 'populate-read' || advice === 'populate-write') {
      return this.populate(addr, size, advice === 'populate-write');
    }
    return doMadvise(this.mm, addr, size, advice, this.system.swap);
  }

  /**
   * Touch one byte at addr and every stride after it below addr+size. A fault stops the touch
   * unless goOn, which moves on to the next page; the first fault is the result.
   */
  touch(addr: bigint, size: bigint, stride: bigint, write: boolean, goOn: boolean): ErrnoName | null {
    if (size === 0n) return null;
    const first = Number(addr);
    const last = Number(addr + ((size - 1n) / stride) * stride);
    let result: ErrnoName | null = null;
    if (stride <= BigInt(PAGE_SIZE)) {
      // Every page from the first to the last touched one: fault it run by run.
      let page = roundDown(first, PAGE_SIZE);
      const end = roundDown(last, PAGE_SIZE) + PAGE_SIZE;
      while (page < end) {
        // The first byte touched in this page (the faulting address, for a userfault message).
        const at = page <= first ? first : first + Math.ceil((page - first) / Number(stride)) * Number(stride);
        const { outcome, next } = this.faultRun(page, end, write, at);
        if (outcome !== 'ok') {
          result ??= outcome;
          if (!goOn) return result;
        } else if (write) {
          this.stored(page, next);
        }
        // Every page of the run faults alike, so a failing run is skipped whole.
        page = next;
      }
      return result;
    }
    // Each such touch makes runs of its own: refuse what would take minutes rather than hang.
    if ((last - first) / Number(stride) > MAX_SEPARATE_TOUCHES) {
      throw new StepTooLarge(`more than ${MAX_SEPARATE_TOUCHES} separate pages touched in one step; split the step or use a stride of one page`);
    }
    for (let a = first; a <= last; a += Number(stride)) {
      const page = roundDown(a, PAGE_SIZE);
      const { outcome } = this.faultRun(page, page + PAGE_SIZE, write, a);
      if (outcome !== 'ok') {
        result ??= outcome;
        if (!goOn) return result;
      } else if (write) {
        this.stored(page, page + PAGE_SIZE);
      }
    }
    return result;
  }

  /**
   * The touch stored a byte in every page of [start, end): their contents are no longer zero
   * (a split maps only zero-filled pages to the zero page). A fault alone, as MADV_POPULATE_WRITE
   * makes, stores nothing.
   */
  private stored(start: number, end: number): void {
    this.mm.data.set(this.mm.pte.index(start), this.mm.pte.index(end), 1);
  }

  /**
   * Fault the run of equal state starting at page, up to end; returns where it stopped. `touched`
   * is the faulting byte in page (undefined for a GUP fault, as populate makes: it faults at the
   * page itself). A fault that blocks on the userfaultfd reader throws UserfaultBlocked with its
   * message: it is always the run's first page, since every page of the run faults alike; one that is never resolved
   * (a fault-loop) throws KernelHang with the touched byte (undefined for populate's GUP faults).
   */
  private faultRun(page: number, end: number, write: boolean, touched?: number): { outcome: FaultOutcome; next: number } {
    const at = touched ?? page;
    const vma = this.mm.vmaLookup(page);
    if (!vma) {
      const following = this.mm.vmas[this.mm.findVmaIndex(page)];
      return { outcome: 'SIGSEGV', next: Math.min(end, following ? following.start : end) };
    }
    let r: { outcome: FaultOutcome; next: number };
    try {
      r = this.handleFault(vma, page, end, write);
    } catch (e) {
      if (e instanceof UserfaultBlocked) {
        // hugetlb_fault() hands handle_userfault() the huge page's address; other faults the page's.
        const vmfAddress = isHugetlb(vma) ? roundDown(page, hugePageSize(vma)) : page;
        e.msg = userfaultMsg(e, vmfAddress, at, write);
        throw e;
      }
      // A fault that is never resolved: a touch retries its byte for ever (populate's GUP loop
      // retries inside the system call: no address).
      if (e instanceof KernelHang && e.why === 'fault-loop' && touched !== undefined) e.address = touched;
      if (!(e instanceof UserfaultSigbus) && !(e instanceof HugetlbNoPage)) throw e;
      return { outcome: 'SIGBUS', next: page + PAGE_SIZE };
    }
    if (write && r.outcome === 'ok') markSoftDirty(this.mm, vma, page, r.next);
    return r;
  }

  private handleFault(vma: Vma, page: number, end: number, write: boolean): { outcome: FaultOutcome; next: number } {
    if (isHugetlb(vma)) {
      if (accessError(vma, write)) return { outcome: 'SIGSEGV', next: Math.min(end, vma.end) };
      hugetlbFault(this.mm, vma, this.uffd, page, write, () => this.hugetlbPoolFree(vma) > 0);
      return { outcome: 'ok', next: Math.min(end, vma.end, roundDown(page, hugePageSize(vma)) + hugePageSize(vma)) };
    }
    let runEnd = Math.min(end, vma.end, this.stateRunEnd(page));
    // Where THPs are possible each 2 MiB block faults on its own.
    if (vmaThpEnabled(vma, this.system)) runEnd = Math.min(runEnd, roundDown(page, PMD_SIZE) + PMD_SIZE);
    return handleMmFault(this.mm, vma, this.uffd, this.system, page, runEnd, write);
  }

  /** The end of the run of pages that share page's page-table state. */
  private stateRunEnd(page: number): number {
    const mm = this.mm;
    const pmd = mm.pmd.map.runAt(mm.pmd.index(page));
    if (!isTable(pmd.value)) {
      return pmd.value === undefined ? pmd.end * PMD_SIZE : roundUp(page + 1, PMD_SIZE);
    }
    const pte = mm.pte.map.runAt(mm.pte.index(page));
    return Math.min(pmd.end * PMD_SIZE, pte.end * PAGE_SIZE);
  }

  /** MADV_POPULATE_(READ|WRITE): fault every page through GUP, stopping at the first error. */
  private populate(addr: bigint, size: bigint, write: boolean): ErrnoName | null {
    if (addr % BigInt(PAGE_SIZE) !== 0n) return 'EINVAL';
    const range = userRange(addr, size);
    if (!range) return 'EINVAL';
    for (let page = range.start; page < range.end; ) {
      const vma = this.mm.vmaLookup(page);
      if (!vma) return 'ENOMEM';
      // check_vma_flags() refusing a populate is EINVAL; a fault that fails is EFAULT.
      if (gupAccessError(vma, write)) return 'EINVAL';
      const { outcome, next } = this.faultRun(page, range.end, write);
      if (outcome !== 'ok') return 'EFAULT';
      page = next;
    }
    return null;
  }

  uffdOpen(features: bigint): ErrnoName | null {
    if (this.uffd) this.uffdClose();
    const { ctx, errno } = uffdioApi(features);
    this.uffd = ctx;
    return errno;
  }

  /** close() of the userfaultfd: EBADF when none is open. */
  uffdClose(): ErrnoName | null {
    if (!this.uffd) return 'EBADF';
    uffdRelease(this.mm, this.uffd);
    this.uffd = null;
    return null;
  }

  uffdRegister(addr: bigint, size: bigint, mode: bigint): ErrnoName | null {
    return this.uffd ? uffdioRegister(this.mm, this.uffd, addr, size, mode) : 'EBADF';
  }

  uffdUnregister(addr: bigint, size: bigint): ErrnoName | null {
    return this.uffd ? uffdioUnregister(this.mm, this.uffd, addr, size) : 'EBADF';
  }

  uffdWriteprotect(addr: bigint, size: bigint, wp: boolean): ErrnoName | null {
    return this.uffd ? uffdioWriteprotect(this.mm, this.uffd, addr, size, wp) : 'EBADF';
  }

  /** /proc/PID/clear_refs: 1-5 are accepted; only 4, with soft-dirty, changes what a scan sees. */
  clearRefs(value: bigint): ErrnoName | null {
    // kstrtoint(): beyond INT_MAX is ERANGE; then only 1..5 are types.
    if (value > 0x7fffffffn) return 'ERANGE';
    if (value < 1n || value > 5n) return 'EINVAL';
    if (value === 4n && this.profile.softDirty) clearSoftDirty(this.mm);
    return null;
  }

  pagemapScan(arg: PmScanArg): ScanResult {
    return doPagemapScan(this.mm, this.uffd, arg, this.profile);
  }
}
