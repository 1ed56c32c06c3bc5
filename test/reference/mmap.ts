// mmap(MAP_FIXED_NOREPLACE | MAP_PRIVATE | MAP_ANONYMOUS), munmap() and mprotect()
// (mm/mmap.c, mm/vma.c, mm/memory.c: free_pgtables(), mm/mprotect.c). Lengths and addresses
// arrive as u64 (bigint) and are checked the way the kernel checks them.

import {
  PAGE_SIZE,
  PGDIR_SIZE,
  PMD_SIZE,
  PROT_WRITE,
  PUD_SIZE,
  TASK_SIZE,
  VM_ACCOUNT,
  addrEnd,
  alignDown,
  blockOf,
  pageOf,
  pgdIndexOf,
  pudIndexOf,
  type RefMm,
  type Vma,
} from './mm';
import { hugeSizeOf, hugetlbClose, hugetlbReservePages, poolOf, unmapHugepageRange } from './hugetlb';
import { changeProtection, UFFD_FEATURE_EVENT_UNMAP, type UffdCtx } from './userfaultfd';

const U64 = (1n << 64n) - 1n;
const PAGE = BigInt(PAGE_SIZE);
/** PAGE_ALIGN() on an unsigned long: wraps to 0 near 2^64. */
const pageAlign = (len: bigint): bigint => ((len + PAGE - 1n) & U64) & ~(PAGE - 1n);

export type MmapErrno = 'EINVAL' | 'ENOMEM' | 'EEXIST';

/** The mapping kinds the reference models. */
export type RefKind = 'anon' | 'hugetlb' | 'hugetlb-shared' | 'hugetlb-1g' | 'shared-anon' | 'memfd-private' | 'memfd-shared';

const SHMEM_KINDS = new Set<RefKind>(['shared-anon', 'memfd-private', 'memfd-shared']);

/**
 * ksys_mmap_pgoff() + do_mmap() with MAP_FIXED_NOREPLACE, for private anonymous memory and
 * MAP_HUGETLB (MAP_PRIVATE or MAP_SHARED, MAP_HUGE_2MB or MAP_HUGE_1GB).
 */
export function doMmap(mm: RefMm, addr: bigint, lenIn: bigint, prot: number, kind: RefKind = 'anon'): MmapErrno | null {
  let lenArg = lenIn;
  let hsize = 0n;
  if (kind !== 'anon' && !SHMEM_KINDS.has(kind)) {
    // MAP_HUGETLB: len = ALIGN(len, huge_page_size(hs)), then hugetlb_file_setup().
    hsize = BigInt(hugeSizeOf(kind));
    lenArg = ((lenIn + hsize - 1n) & U64) & ~(hsize - 1n);
  }
  if (lenArg === 0n) return 'EINVAL';
  const len = pageAlign(lenArg);
  if (len === 0n) return 'ENOMEM'; // "Careful about overflows.."
  // __get_unmapped_area(): MAP_FIXED takes addr as it is, after the file's get_unmapped_area
  // (hugetlb_get_unmapped_area(): len and a MAP_FIXED addr must be huge-page aligned), then:
  if (len > BigInt(TASK_SIZE)) return 'ENOMEM';
  if (hsize && addr % hsize !== 0n) return 'EINVAL';
  if (addr > BigInt(TASK_SIZE) - len) return 'ENOMEM';
  if (addr % PAGE !== 0n) return 'EINVAL';
  const start = Number(addr);
  const end = Number(addr + len);
  if (mm.vmasIntersecting(start, end).length > 0) return 'EEXIST';
  if (hsize) {
    // mmap_region() -> hugetlbfs_file_mmap(): VM_HUGETLB (never VM_ACCOUNT), and the
    // reservation of every huge page of the mapping (hugetlb_reserve_pages()).
    const size = Number(hsize);
    const shared = kind === 'hugetlb-shared';
    const file = mm.newHugeFile(poolOf(size));
    if (!hugetlbReservePages(mm, file, shared, 0, (end - start) / size)) return 'ENOMEM';
    file.users = 1;
    mm.insertVma({ start, end, prot, flags: 0, uffd: 0, anonVma: null, huge: { size, shared, file, pgoff: 0 } });
    return null;
  }
  if (SHMEM_KINDS.has(kind)) {
    // A new file of its own: shmem_zero_setup() (i_size = len) or the harness's memfd, ftruncate()d
    // to the length asked for (so its last page is whole in the file). accountable_mapping(): a
    // private writable mapping is VM_ACCOUNT, a shared one never (shmem accounts its own size).
    const shared = kind !== 'memfd-private';
    const file = mm.newShmFile(Number(len) / PAGE_SIZE);
    const flags = !shared && prot & PROT_WRITE ? VM_ACCOUNT : 0;
    mm.insertVma({ start, end, prot, flags, uffd: 0, anonVma: null, huge: null, shm: { file, pgoff: 0, shared } });
    mm.mergeAround(start, end); // never with another mmap()'s file
    return null;
  }
  // mmap_region(): a private writable mapping is accounted (VM_ACCOUNT); new, no anon_vma yet.
  const flags = prot & PROT_WRITE ? VM_ACCOUNT : 0;
  mm.insertVma({ start, end, prot, flags, uffd: 0, anonVma: null, huge: null });
  mm.mergeAround(start, end); // vma_merge_new_range()
  return null;
}

/** What munmap() did, besides its errno: whether it waited for a userfaultfd reader. */
export type MunmapResult = 'EINVAL' | 'userfault' | null;

/** do_vmi_munmap() -> do_vmi_align_munmap() */
export function doMunmap(mm: RefMm, ctx: UffdCtx | null, startIn: bigint, lenIn: bigint): MunmapResult {
  if (startIn % PAGE !== 0n || startIn > BigInt(TASK_SIZE) || lenIn > BigInt(TASK_SIZE) - startIn) return 'EINVAL';
  const endIn = startIn + pageAlign(lenIn);
  if (endIn === startIn) return 'EINVAL';
  const start = Number(startIn);
  const end = Number(endIn);
  if (mm.vmasIntersecting(start, end).length === 0) return null;
  // vms_gather_munmap_vmas(): the splits at both ends come first (a hugetlb VMA refuses one
  // inside a huge page), before anything is unmapped.
  if (!mm.mayIsolate(start, end)) {
    // The split at the start is done (and stays; a THP across it is split) before the one at
    // the end fails.
    if (mm.maySplitAt(start)) mm.splitAt(start);
    return 'EINVAL';
  }
  const detached = mm.isolate(start, end);
  // userfaultfd_unmap_prep() / userfaultfd_unmap_complete(): with UFFD_FEATURE_EVENT_UNMAP on a
  // registered VMA, munmap waits until a reader takes the event.
  const waits = ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_UNMAP) !== 0n && detached.some((v) => v.uffd !== 0);
  const prev = mm.prevOf(detached[0].start);
  const next = mm.findVma(detached[detached.length - 1].end);
  // unmap_vmas() with ZAP_FLAG_DROP_MARKER: every entry goes, guard and uffd-wp markers too.
  for (const vma of detached) {
    if (vma.huge) {
      unmapHugepageRange(mm, vma, vma.start, vma.end, true);
      continue;
    }
    mm.zapThps(vma.start, vma.end);
    for (let addr = vma.start; addr < vma.end; addr += PAGE_SIZE) {
      if (mm.hasPteTable(addr)) mm.pteSet(addr, undefined);
    }
  }
  mm.vmas = mm.vmas.filter((v) => !detached.includes(v));
  for (const vma of detached) if (vma.huge) hugetlbClose(mm, vma); // remove_vma(): vm_ops->close, fput()
  // vms->unmap_start / unmap_end: FIRST_USER_ADDRESS (0) and USER_PGTABLES_CEILING (0 = the top).
  freePgtables(mm, detached, prev ? prev.end : 0, next ? next.start : 0);
  return waits ? 'userfault' : null;
}

/** ceiling - 1 with unsigned arithmetic: a ceiling of 0 means the top of the address space. */
const minusOne = (x: number): number => (x === 0 ? Infinity : x - 1);

/**
 * free_pgtables(): the removed VMAs, in groups of neighbours less than a PMD apart; a hugetlb VMA
 * is always alone (hugetlb_free_pgd_range(), which is free_pgd_range() on x86).
 */
function freePgtables(mm: RefMm, vmas: Vma[], floor: number, ceiling: number): void {
  for (let i = 0; i < vmas.length; ) {
    const addr = vmas[i].start;
    let last = vmas[i];
    let j = i + 1;
    if (!last.huge) while (j < vmas.length && vmas[j].start <= last.end + PMD_SIZE && !vmas[j].huge) last = vmas[j++];
    freePgdRange(mm, addr, last.end, floor, j < vmas.length ? vmas[j].start : ceiling);
    i = j;
  }
}

/** free_pgd_range() */
function freePgdRange(mm: RefMm, addr: number, end: number, floor: number, ceiling: number): void {
  addr = alignDown(addr, PMD_SIZE);
  if (addr < floor) addr += PMD_SIZE;
  if (ceiling) {
    ceiling = alignDown(ceiling, PMD_SIZE);
    if (!ceiling) return;
  }
  if (end - 1 > minusOne(ceiling)) end -= PMD_SIZE;
  if (addr > end - 1) return;
  for (let a = addr; a !== end; ) {
    const next = addrEnd(a, end, PGDIR_SIZE);
    // The p4d level is folded: free_p4d_range() is free_pud_range() of the pgd entry.
    if (mm.pudTables.has(pgdIndexOf(a))) freePudRange(mm, a, next, floor, ceiling);
    a = next;
  }
}

/** free_pud_range(): then the PUD table itself if its 512 GiB span is free of other VMAs. */
function freePudRange(mm: RefMm, addr: number, end: number, floor: number, ceiling: number): void {
  const start = addr;
  for (let a = addr; a !== end; ) {
    const next = addrEnd(a, end, PUD_SIZE);
    if (mm.pmdTables.has(pudIndexOf(a))) freePmdRange(mm, a, next, floor, ceiling);
    a = next;
  }
  const span = alignDown(start, PGDIR_SIZE);
  if (span < floor) return;
  if (ceiling) {
    ceiling = alignDown(ceiling, PGDIR_SIZE);
    if (!ceiling) return;
  }
  if (end - 1 > minusOne(ceiling)) return;
  mm.freePudTable(pgdIndexOf(span));
}

/** free_pmd_range(): every PTE table in range, then the PMD table if its 1 GiB span is free. */
function freePmdRange(mm: RefMm, addr: number, end: number, floor: number, ceiling: number): void {
  const start = addr;
  for (let a = addr; a !== end; ) {
    const next = addrEnd(a, end, PMD_SIZE);
    if (mm.pteTables.has(blockOf(a))) mm.freePteTable(blockOf(a)); // free_pte_range()
    a = next;
  }
  const span = alignDown(start, PUD_SIZE);
  if (span < floor) return;
  if (ceiling) {
    ceiling = alignDown(ceiling, PUD_SIZE);
    if (!ceiling) return;
  }
  if (end - 1 > minusOne(ceiling)) return;
  mm.freePmdTable(pudIndexOf(span));
}

export type MprotectErrno = 'EINVAL' | 'ENOMEM';

/** do_mprotect_pkey() with pkey -1 */
export function doMprotect(mm: RefMm, ctx: UffdCtx | null, startIn: bigint, lenIn: bigint, prot: number): MprotectErrno | null {
  if (startIn % PAGE !== 0n) return 'EINVAL';
  if (lenIn === 0n) return null;
  const len = pageAlign(lenIn);
  const endIn = (startIn + len) & U64;
  if (endIn <= startIn) return 'ENOMEM';
  // Nothing lives at or above TASK_SIZE: clip the walk there (what is beyond is a gap).
  const start = Number(startIn);
  const end = endIn > BigInt(TASK_SIZE) ? TASK_SIZE + PAGE_SIZE : Number(endIn);
  const first = mm.vmasIntersecting(start, end)[0];
  if (!first || first.start > start) return 'ENOMEM';
  let tmp = first.start;
  let error: MprotectErrno | null = null;
  for (const vma of mm.vmasIntersecting(start, end)) {
    if (vma.start !== tmp) {
      error = 'ENOMEM';
      break;
    }
    const fixupEnd = Math.min(vma.end, end);
    error = mprotectFixup(mm, ctx, vma, Math.max(start, vma.start), fixupEnd, prot);
    if (error) break;
    tmp = fixupEnd;
  }
  mm.mergeAround(start, Math.min(tmp, end));
  if (!error && tmp < end) error = 'ENOMEM';
  return error;
}

/** mprotect_fixup() for [start, end) of one VMA. */
function mprotectFixup(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, prot: number): 'EINVAL' | null {
  let flags = vma.flags;
  if (prot === vma.prot) return null; // newflags == oldflags
  if (!mm.mayIsolate(start, end)) return 'EINVAL'; // vma_modify_flags(): hugetlb_vm_op_split()
  if (vma.huge) {
    // Never VM_ACCOUNT; hugetlb_change_protection() keeps uffd-wp bits and markers.
    for (const part of mm.isolate(start, end)) part.prot = prot;
    return null;
  }
  // Making a private mapping writable charges it (never a shared one); taking write away
  // uncharges only an anonymous VMA (vma_is_anonymous(): not shmem) that never got an anon_vma.
  if (prot & PROT_WRITE) {
    if (!(flags & VM_ACCOUNT) && !(vma.prot & PROT_WRITE) && !vma.shm?.shared) flags |= VM_ACCOUNT;
  } else if (flags & VM_ACCOUNT && vma.anonVma === null && !vma.shm) {
    flags &= ~VM_ACCOUNT;
  }
  for (const part of mm.isolate(start, end)) {
    part.prot = prot;
    part.flags = flags;
    // change_protection() with vm_page_prot; MM_CP_TRY_CHANGE_WRITABLE for a writable private VMA.
    changeProtection(mm, ctx, part, part.start, part.end, { tryChangeWritable: (prot & PROT_WRITE) !== 0 });
  }
  return null;
}

export { pageOf };
