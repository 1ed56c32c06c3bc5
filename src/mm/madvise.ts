// madvise() (mm/madvise.c): validation, the walk over VMAs, and each advice's effect.
// Returns null on success or the errno name.

import { PMD_SIZE, PROT_READ, PROT_WRITE, type ErrnoName } from '../uapi';
import type { Advice } from '../scenario/program';
import { KernelHang } from './hang';
import type { MmStruct } from './mm';
import {
  PTE_FILE,
  PTE_LAZYFREE,
  PTE_LAZYFREE_DIRTY,
  PTE_MARKER_GUARD,
  PTE_SPECIAL,
  PTE_SOFT_DIRTY,
  PTE_SWAP,
  PTE_UFFD_WP,
  PTE_ZERO,
  isGuardMarker,
  isHugeLeaf,
  isUffdWpMarker,
  ptePresent,
  pteKind,
  type Pte,
} from './pte';
import { zapRange } from './memory';
import { largeFolioBlocks, madviseColdLargeFolios, madviseCollapse, mappedWhole, splitFolio, splitHugePmd, splitPartialLargeFolios } from './huge_memory';
import { filePageout, fileRemove, fileWillneed, isSharedMapping } from './filemap';
import { modifyVmas, userRange } from './mmap';
import { fillNone } from './userfaultfd';
import { hugePageSize, isHugetlb, isPfnmap, userfaultfdWp, vmaIsAnonymous, VM_DONTCOPY, VM_RAND_READ, VM_SEQ_READ, type Vma } from './vma';
import { hugetlbZap } from './hugetlb';


/** The part of [start, end) inside one VMA, and that VMA. */
interface VmaRange {
  vma: Vma;
  start: number;
  end: number;
  /** A swap device is active (system.swap). */
  swap: boolean;
}

/** Advice that only changes VMA flags: madvise_update_vma() splits and merges VMAs. */
const FLAG_ADVICE: Partial<Record<Advice, (vma: Vma) => Partial<Vma>>> = {
  normal: (vma) => ({ advice: vma.advice & ~(VM_SEQ_READ | VM_RAND_READ) }),
  random: (vma) => ({ advice: (vma.advice & ~VM_SEQ_READ) | VM_RAND_READ }),
  sequential: (vma) => ({ advice: (vma.advice & ~VM_RAND_READ) | VM_SEQ_READ }),
  dontfork: (vma) => ({ advice: vma.advice | VM_DONTCOPY }),
  dofork: (vma) => ({ advice: vma.advice & ~VM_DONTCOPY }),
  hugepage: () => ({ thp: 'hugepage' }),
  nohugepage: () => ({ thp: 'nohugepage' }),
};

/** Advice that acts on the entries of each VMA range. */
const RANGE_ADVICE: Partial<Record<Advice, (mm: MmStruct, r: VmaRange) => ErrnoName | null>> = {
  willneed: (_mm, r) => (fileWillneed(r.vma, r.start, r.end), null),
  cold: notHugetlb((mm, r) => (madviseColdLargeFolios(mm, r.vma, r.start, r.end), null)),
  dontneed: madviseDontneed,
  free: madviseFree,
  remove: madviseRemove,
  pageout: notHugetlb(madvisePageout),
  collapse: (mm, r) => madviseCollapse(mm, r.vma, r.start, r.end),
  'guard-install': madviseGuardInstall,
  'guard-remove': madviseGuardRemove,
};

export function doMadvise(mm: MmStruct, addr: bigint, len: bigint, advice: Advice, swap: boolean): ErrnoName | null {
  if (addr % 4096n !== 0n) return 'EINVAL';
  const range = userRange(addr, len);
  if (!range) return 'EINVAL';
  const { start, end } = range;
  if (start === end) return null;
  if (advice === 'populate-read' || advice === 'populate-write') {
    throw new Error('internal: populate is applied by the process (see process.ts)');
  }
  if (!mm.anyVmaIn(start, end)) return 'ENOMEM';
  const unmapped = !mm.fullyMapped(start, end);
  const flag = FLAG_ADVICE[advice];
  if (flag) {
    const { error } = modifyVmas(mm, start, end, flag);
    if (error) return error;
  } else {
    const apply = RANGE_ADVICE[advice]!;
    for (const vma of mm.vmasIn(start, end)) {
      const err = apply(mm, { vma, start: Math.max(start, vma.start), end: Math.min(end, vma.end), swap });
      if (err) return err;
    }
  }
  return unmapped ? 'ENOMEM' : null;
}

/** Advice that acts on LRU pages or page tables only: never on hugetlb (can_madv_lru_vma()). */
function notHugetlb(apply: (mm: MmStruct, r: VmaRange) => ErrnoName | null) {
  return (mm: MmStruct, r: VmaRange): ErrnoName | null => (isHugetlb(r.vma) ? 'EINVAL' : apply(mm, r));
}

/** is_valid_guard_vma(), and whether the kernel has guard regions at all (6.13; files 6.15). */
function guardAllowed(mm: MmStruct, vma: Vma): boolean {
  if (!mm.profile.guardRegions || isPfnmap(vma) || isHugetlb(vma)) return false;
  return vmaIsAnonymous(vma) || mm.profile.guardInFileMappings;
}

/** MADV_REMOVE: punch a hole in a shared file mapping's file; its mappings are zapped. */
function madviseRemove(mm: MmStruct, r: VmaRange): ErrnoName | null {
  if (isHugetlb(r.vma)) return hugetlbRemove(mm, r);
  if (!r.vma.mapping) return 'EINVAL';
  if (!isSharedMapping(r.vma)) return 'EACCES';
  fileRemove(r.vma, r.start, r.end, mm);
  zapRange(mm, r.vma, r.start, r.end);
  return null;
}

/**
 * MADV_REMOVE on hugetlb (every hugetlb VMA has its hugetlbfs file): private ones are EACCES;
 * hugetlbfs_punch_hole() unmaps and frees only the huge pages wholly inside the hole (partial
 * ones are zeroed in place), leaving uffd-wp markers (hugetlb_vmdelete_list(), no DROP_MARKER).
 */
function hugetlbRemove(mm: MmStruct, r: VmaRange): ErrnoName | null {
  if (r.vma.kind === 'hugetlb' || r.vma.kind === 'hugetlb-1g') return 'EACCES';
  const size = hugePageSize(r.vma);
  const lo = Math.ceil(r.start / size) * size;
  const hi = Math.floor(r.end / size) * size;
  if (lo < hi) {
    hugetlbZap(mm, r.vma, lo, hi, false);
    r.vma.hugetlbFile?.punch((lo - r.vma.fileBase!) / size, (hi - r.vma.fileBase!) / size);
  }
  return null;
}

/** MADV_DONTNEED: zap, and free PTE tables left empty (CONFIG_PT_RECLAIM). */
function madviseDontneed(mm: MmStruct, r: VmaRange): ErrnoName | null {
  if (isPfnmap(r.vma)) return 'EINVAL';
  if (isHugetlb(r.vma)) {
    // The start must be huge-page aligned; the end is rounded down to a huge page.
    const size = hugePageSize(r.vma);
    if (r.start % size) return 'EINVAL';
    hugetlbZap(mm, r.vma, r.start, Math.floor(r.end / size) * size, false);
    return null;
  }
  zapRange(mm, r.vma, r.start, r.end, { reclaimPt: true });
  return null;
}

/**
 * MADV_FREE: anonymous pages stay mapped until reclaim. A THP the range covers only partly is
 * split (madvise_free_huge_pmd()), with the zero-filled pages mapped to the zero page.
 */
function madviseFree(mm: MmStruct, r: VmaRange): ErrnoName | null {
  if (!vmaIsAnonymous(r.vma)) return 'EINVAL';
  splitPartialLargeFolios(mm, r.start, r.end);
  // madvise_free_huge_pmd(): a THP the range covers whole is lazily freed as it is.
  for (const block of [...mm.hugeLeavesIn(r.start, r.end)]) {
    const pmd = mm.pmd.get(block)!;
    if (!(pmd & PTE_ZERO)) mm.pmd.set(block, block + PMD_SIZE, (pmd & ~PTE_LAZYFREE_DIRTY) | PTE_LAZYFREE);
  }
  // Swap entries are freed (the slots become none); anonymous pages become lazily freed.
  mm.pte.map.update(mm.pte.index(r.start), mm.pte.index(r.end), (pte) => {
    if (pteKind(pte) === PTE_SWAP) return undefined;
    return ptePresent(pte) && !(pte & (PTE_ZERO | PTE_SPECIAL)) ? (pte & ~PTE_LAZYFREE_DIRTY) | PTE_LAZYFREE : pte;
  });
  return null;
}

/**
 * MADV_PAGEOUT (madvise_cold_or_pageout_pte_range(), then reclaim_pages()): a large folio in the
 * range is split on the way, which maps its zero-filled pages to the zero page. With swap, the
 * anonymous pages then become swap entries (uffd-wp and soft-dirty carried over); a wholly
 * covered THP is reclaimed, and so swapped out, whole. Without swap they stay mapped.
 */
function madvisePageout(mm: MmStruct, r: VmaRange): ErrnoName | null {
  if (r.vma.mapping) filePageout(mm, r.vma, r.start, r.end, r.swap);
  let start = r.start;
  let end = r.end;
  const reclaimed = vmaIsAnonymous(r.vma) ? reclaimLazyfreeFolios(mm, r) : [];
  // Anonymous large folios (a file VMA's huge leaves are page cache: filePageout() did them).
  for (const block of vmaIsAnonymous(r.vma) ? largeFolioBlocks(mm, r.start, r.end) : []) {
    if (reclaimed.includes(block)) continue;
    splitFolio(mm, block);
    if (r.swap && coversBlock(block, r)) {
      start = Math.min(start, block);
      end = Math.max(end, block + PMD_SIZE);
    }
  }
  // Reclaim discards clean lazily-freed pages, whatever their uffd-wp bit, and swaps the rest
  // but those written since MADV_FREE: made swapbacked again, they stay (activated) this time.
  for (const run of [...mm.pte.map.runs(mm.pte.index(r.start), mm.pte.index(r.end))]) {
    if (!ptePresent(run.value) || !(run.value & PTE_LAZYFREE)) continue;
    mm.pte.map.set(run.start, run.end, undefined);
    mm.data.set(run.start, run.end, undefined);
  }
  if (r.swap) mm.pte.map.update(mm.pte.index(start), mm.pte.index(end), swapOut);
  mm.pte.map.update(mm.pte.index(r.start), mm.pte.index(r.end), (pte) => pte & ~PTE_LAZYFREE_DIRTY);
  return null;
}

/**
 * shrink_folio_list() of a lazily-freed large folio the range maps whole (by its PMD, which
 * try_to_unmap() splits, or by one batch of PTEs): still clean, it is discarded (the PTE table
 * stays, all none); written anywhere since MADV_FREE, it is made swap-backed and kept, whole.
 * Returns the blocks it took.
 */
function reclaimLazyfreeFolios(mm: MmStruct, r: VmaRange): number[] {
  const done: number[] = [];
  for (const block of largeFolioBlocks(mm, r.start, r.end)) {
    if (!coversBlock(block, r) || !mappedWhole(mm, block)) continue;
    const lo = mm.pte.index(block);
    const hi = mm.pte.index(block + PMD_SIZE);
    const pmd = mm.pmd.get(block);
    let flags = isHugeLeaf(pmd) ? pmd! : 0;
    if (!isHugeLeaf(pmd)) for (const run of mm.pte.map.runs(lo, hi)) flags |= run.value;
    if (!(flags & (PTE_LAZYFREE | PTE_LAZYFREE_DIRTY))) continue;
    done.push(block);
    splitHugePmd(mm, block);
    if (flags & PTE_LAZYFREE_DIRTY) {
      mm.pte.map.update(lo, hi, (pte) => pte & ~(PTE_LAZYFREE | PTE_LAZYFREE_DIRTY));
    } else {
      mm.pte.map.set(lo, hi, undefined);
      mm.data.set(lo, hi, undefined);
    }
  }
  return done;
}

/** A whole THP in the range: reclaim took the folio, and every page of it, after the split. */
function coversBlock(block: number, r: VmaRange): boolean {
  return block >= r.start && block + PMD_SIZE <= r.end;
}

/** try_to_unmap() of an anonymous page into swap: the zero page and markers are left alone. */
function swapOut(pte: Pte): Pte {
  if (!ptePresent(pte) || pte & (PTE_ZERO | PTE_FILE | PTE_LAZYFREE_DIRTY)) return pte;
  return PTE_SWAP | (pte & (PTE_UFFD_WP | PTE_SOFT_DIRTY));
}

/** MADV_GUARD_INSTALL: zap what is mapped, then a guard marker in every slot. */
function madviseGuardInstall(mm: MmStruct, r: VmaRange): ErrnoName | null {
  if (!guardAllowed(mm, r.vma)) return 'EINVAL';
  // In a file VMA the zap keeps uffd-wp markers (and leaves one for every write-protected page or
  // swap entry of a uffd-wp VMA), so madvise_guard_install()'s walk never finds the range
  // installable: it zaps and walks again, for ever (only SIGKILL ends it). A guard marker, with or
  // without the uffd-wp bit, is no obstacle.
  const wp = userfaultfdWp(r.vma);
  const leavesMarker = (pte: Pte): boolean =>
    isUffdWpMarker(pte) || (wp && (pte & PTE_UFFD_WP) !== 0 && (ptePresent(pte) || pteKind(pte) === PTE_SWAP));
  if (r.vma.mapping && [...mm.pte.map.runs(mm.pte.index(r.start), mm.pte.index(r.end))].some((run) => leavesMarker(run.value))) {
    throw new KernelHang(
      'restart-loop',
      'madvise_guard_install() zaps the range and walks it again for ever: the zap of a file VMA keeps uffd-wp markers, which block the guard markers',
    );
  }
  if (vmaIsAnonymous(r.vma)) mm.anonVmaPrepare(r.vma);
  zapRange(mm, r.vma, r.start, r.end);
  mm.allocPteTables(r.start, r.end);
  fillNone(mm, r.start, r.end, PTE_MARKER_GUARD);
  return null;
}

/** MADV_GUARD_REMOVE: guard markers (WP'd ones too) become none; nothing else changes. */
function madviseGuardRemove(mm: MmStruct, r: VmaRange): ErrnoName | null {
  if (!guardAllowed(mm, r.vma)) return 'EINVAL';
  mm.pte.map.update(mm.pte.index(r.start), mm.pte.index(r.end), (pte) => (isGuardMarker(pte) ? undefined : pte));
  return null;
}

/** check_vma_flags() of GUP, which MADV_POPULATE_* uses: stricter than a CPU access. */
export function gupAccessError(vma: Vma, write: boolean): boolean {
  if (isPfnmap(vma)) return true;
  return write ? (vma.prot & PROT_WRITE) === 0 : (vma.prot & PROT_READ) === 0;
}
