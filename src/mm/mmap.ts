// mmap(MAP_FIXED_NOREPLACE), munmap() and mprotect() (mm/mmap.c, mm/vma.c, mm/mprotect.c).
// Each returns null on success or the errno name.

import { PAGE_SIZE, PMD_SIZE, PROT_WRITE, TASK_SIZE_MAX, type ErrnoName } from '../uapi';
import type { MemoryKind } from '../scenario/program';
import { isAligned, roundUp, type MmStruct } from './mm';
import { HugetlbFile, hugetlbZap } from './hugetlb';
import { AddressSpace } from './filemap';
import { isHugeLeaf, PTE_PRESENT, PTE_SPECIAL, PTE_WRITE } from './pte';
import { splitHugePmd } from './huge_memory';
import { zapRange } from './memory';
import { accountable, hugePageSize, isHugetlb, vmaIsAnonymous, type Vma } from './vma';

const FILE_KINDS: readonly MemoryKind[] = ['shared-anon', 'file-private', 'file-shared', 'memfd-private', 'memfd-shared'];

/** A length as the kernel takes it: rounded up to pages; null when it cannot be. */
function pageAlignLen(len: bigint): number | null {
  const rounded = ((len + BigInt(PAGE_SIZE) - 1n) / BigInt(PAGE_SIZE)) * BigInt(PAGE_SIZE);
  return rounded > BigInt(TASK_SIZE_MAX) ? null : Number(rounded);
}

/**
 * do_mmap() with MAP_FIXED_NOREPLACE at addr. `reserve` is asked last, as mmap_region() asks
 * hugetlbfs for its reservation: ENOMEM when it refuses.
 */
export function doMmap(
  mm: MmStruct,
  addr: bigint,
  len: bigint,
  kind: MemoryKind,
  prot: number,
  reserve: (vma: Vma) => boolean = () => true,
): ErrnoName | null {
  if (len === 0n) return 'EINVAL';
  const size = pageAlignLen(len);
  if (size === null) return 'ENOMEM';
  // __get_unmapped_area(): the range check comes before the alignment check.
  if (addr > BigInt(TASK_SIZE_MAX - size)) return 'ENOMEM';
  if (addr % BigInt(PAGE_SIZE) !== 0n) return 'EINVAL';
  const start = Number(addr);
  const vma: Vma = {
    start,
    end: start + size,
    kind,
    prot,
    thp: 'none',
    advice: 0,
    uffd: 0,
    softDirty: false,
    account: accountable({ kind, prot }),
    anonVma: null,
  };
  if (isHugetlb(vma)) {
    // hugetlb_get_unmapped_area(): an aligned address; the length is rounded up to huge pages.
    const huge = hugePageSize(vma);
    if (!isAligned(start, huge)) return 'EINVAL';
    vma.end = roundUp(vma.end, huge);
    if (vma.end > TASK_SIZE_MAX) return 'ENOMEM';
    // A shared mapping gets a hugetlbfs file of its own, which reserves every page at mmap.
    if (kind === 'hugetlb-shared') {
      vma.hugetlbFile = new HugetlbFile((vma.end - vma.start) / huge);
      vma.fileBase = start;
    }
  }
  if (mm.anyVmaIn(vma.start, vma.end)) return 'EEXIST';
  if (!reserve(vma)) return 'ENOMEM';
  if (kind === 'pfnmap') {
    // remap_pfn_range(): a driver maps every page at mmap time, with special PTEs.
    mm.insertVma(vma);
    mm.allocPteTables(vma.start, vma.end);
    mm.pte.set(vma.start, vma.end, PTE_PRESENT | PTE_SPECIAL);
    return null;
  }
  if (FILE_KINDS.includes(kind)) {
    // Each mapping gets a file of its own size: a new disk file, memfd, or shmem object.
    vma.mapping = new AddressSpace(!kind.startsWith('file-'), size / PAGE_SIZE, mm.raPages);
    vma.fileBase = start;
  }
  mm.insertVma(vma);
  return null;
}

/**
 * VM_ACCOUNT after mprotect_fixup(): charged when a private mapping becomes writable; given back
 * when an anonymous one without anon_vma stops being writable.
 */
function mprotectAccount(vma: Vma, prot: number): boolean {
  if (prot & PROT_WRITE) return vma.account || accountable({ kind: vma.kind, prot });
  if (vma.account && vmaIsAnonymous(vma) && vma.anonVma === null) return false;
  return vma.account;
}

/** A hugetlb VMA is only ever split at huge-page boundaries (hugetlb_vm_op_split(): EINVAL). */
function splitRefusedAt(vma: Vma, addr: number): boolean {
  return isHugetlb(vma) && vma.start < addr && addr < vma.end && addr % hugePageSize(vma) !== 0;
}

function splitRefused(vma: Vma, start: number, end: number): boolean {
  return splitRefusedAt(vma, start) || splitRefusedAt(vma, end);
}

/** Validate [addr, addr+len) for munmap/mprotect/madvise-like calls; null if invalid. */
export function userRange(addr: bigint, len: bigint): { start: number; end: number } | null {
  if (addr % BigInt(PAGE_SIZE) !== 0n) return null;
  const size = pageAlignLen(len);
  if (size === null || addr > BigInt(TASK_SIZE_MAX) || addr + BigInt(size) > BigInt(TASK_SIZE_MAX)) return null;
  const start = Number(addr);
  return { start, end: start + size };
}

/**
 * split_vma() at both ends of [start, end), splitting any THP that straddles a new boundary
 * (vma_adjust_trans_huge()).
 */
export function splitVmas(mm: MmStruct, start: number, end: number): Vma[] {
  for (const addr of [start, end]) {
    if (!isAligned(addr, PMD_SIZE) && isHugeLeaf(mm.pmd.get(addr)) && mm.vmaLookup(addr)) splitHugePmd(mm, addr);
  }
  return mm.splitAt(start, end);
}

/**
 * vma_modify() over [start, end), VMA by VMA in address order: each VMA for which `change`
 * returns new fields is split to the range and changed; VMAs that would not change are left
 * whole (mprotect_fixup(), madvise_update_vma() and userfaultfd_register_range() all skip them).
 * A split a hugetlb VMA refuses stops the walk with EINVAL (the VMAs before it stay changed).
 * Then each changed part merges with its neighbours. `change` sees the part of the VMA in the range.
 */
export function modifyVmas(
  mm: MmStruct,
  start: number,
  end: number,
  change: (vma: Vma, lo: number, hi: number) => Partial<Vma> | null,
): { error: ErrnoName | null; stoppedAt: number } {
  let stoppedAt = end;
  let error: ErrnoName | null = null;
  const changed: [number, number][] = [];
  for (const vma of mm.vmasIn(start, end)) {
    const lo = Math.max(start, vma.start);
    const hi = Math.min(end, vma.end);
    const fields = change(vma, lo, hi);
    if (!fields || Object.entries(fields).every(([k, v]) => vma[k as keyof Vma] === v)) continue;
    if (splitRefused(vma, start, end)) {
      error = 'EINVAL';
      stoppedAt = lo;
      break;
    }
    for (const part of splitVmas(mm, lo, hi)) Object.assign(part, fields);
    changed.push([lo, hi]);
  }
  // vma_modify() merges a changed VMA with its neighbours; VMAs left as they were merge with none.
  for (const [lo, hi] of changed) mm.mergeAround(lo, hi);
  return { error, stoppedAt };
}

/** do_vmi_munmap() */
export function doMunmap(mm: MmStruct, addr: bigint, len: bigint): ErrnoName | null {
  if (len === 0n) return 'EINVAL';
  const range = userRange(addr, len);
  if (!range) return 'EINVAL';
  const { start, end } = range;
  // vms_gather_munmap_vmas(): the first VMA is split at start, then the last at end; a refused
  // end split fails the call after the start split (and the THP split it made) happened.
  const inRange = mm.vmasIn(start, end);
  if (inRange.length === 0) return null;
  if (splitRefusedAt(inRange[0], start)) return 'EINVAL';
  if (splitRefusedAt(inRange[inRange.length - 1], end)) {
    splitVmas(mm, start, start);
    return 'EINVAL';
  }
  const vmas = splitVmas(mm, start, end);
  for (const vma of vmas) {
    if (isHugetlb(vma)) hugetlbZap(mm, vma, vma.start, vma.end, true);
    else zapRange(mm, vma, vma.start, vma.end, { dropMarkers: true });
  }
  mm.vmas = mm.vmas.filter((v) => !vmas.includes(v));
  mm.freePgtables(start, end);
  return null;
}

/** do_mprotect_pkey(): applied VMA by VMA until a gap, which gives ENOMEM. */
export function doMprotect(mm: MmStruct, addr: bigint, len: bigint, prot: number): ErrnoName | null {
  if (addr % BigInt(PAGE_SIZE) !== 0n) return 'EINVAL';
  if (len === 0n) return null;
  const range = userRange(addr, len);
  if (!range) return 'ENOMEM';
  const { start, end } = range;
  const first = mm.vmaLookup(start);
  if (!first) return 'ENOMEM';
  let pos = start;
  let err: ErrnoName | null = null;
  for (const vma of mm.vmasIn(start, end)) {
    if (vma.start > pos) {
      err = 'ENOMEM';
      break;
    }
    pos = vma.end;
  }
  // mprotect_fixup() VMA by VMA: a hugetlb split refused (EINVAL) or a gap (ENOMEM) stops it.
  let covered = Math.min(end, err ? pos : end);
  const fixup = modifyVmas(mm, start, covered, (vma) => ({ prot, account: mprotectAccount(vma, prot) }));
  if (fixup.error) {
    covered = fixup.stoppedAt;
    err = fixup.error;
  }
  // change_protection() without write permission write-protects every present page.
  if (!(prot & PROT_WRITE)) mm.pte.map.update(mm.pte.index(start), mm.pte.index(covered), (pte) => pte & ~PTE_WRITE);
  if (!err && pos < end) err = 'ENOMEM';
  return err;
}

