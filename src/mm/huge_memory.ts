// Transparent huge pages (mm/huge_memory.c, mm/khugepaged.c): which blocks fault in as THPs,
// splitting a PMD mapping, splitting the folio itself, and MADV_COLLAPSE.

import { PMD_SIZE, type ErrnoName } from '../uapi';
import type { SystemConfig } from '../scenario/program';
import { roundDown, roundUp, type MmStruct } from './mm';
import {
  HUGE_LEAF,
  isHugeLeaf,
  isSwapPte,
  isTable,
  pteKind,
  ptePresent,
  pteSwpUffdWpAny,
  PTE_FILE,
  PTE_LARGE_FOLIO,
  PTE_PRESENT,
  PTE_SOFT_DIRTY,
  PTE_SWAP,
  PTE_UFFD_WP,
  PTE_ZERO,
  TABLE,
} from './pte';
import { vmaIsAnonymous, type Vma } from './vma';
import { NotModelled } from '../errors';

/** thp_vma_allowable_order() for page faults, by the system's THP mode and the VMA's advice. */
export function vmaThpEnabled(vma: Vma, system: SystemConfig): boolean {
  if (!vmaIsAnonymous(vma) || vma.thp === 'nohugepage') return false;
  if (system.thp === 'always') return true;
  return system.thp === 'madvise' && vma.thp === 'hugepage';
}

/** A fault at addr maps a THP: the block lies wholly in the VMA and has no table yet. */
export function thpFaultAllowed(mm: MmStruct, vma: Vma, addr: number, system: SystemConfig): boolean {
  const block = roundDown(addr, PMD_SIZE);
  return (
    vmaThpEnabled(vma, system) &&
    block >= vma.start &&
    block + PMD_SIZE <= vma.end &&
    mm.pmd.get(block) === undefined
  );
}

/** do_huge_pmd_anonymous_page(): a THP for a write, the huge zero page for a read. */
export function doHugePmdAnonymousPage(mm: MmStruct, addr: number, write: boolean): void {
  const block = roundDown(addr, PMD_SIZE);
  mm.allocPmdTables(block, block + PMD_SIZE);
  mm.pmd.set(block, block + PMD_SIZE, write ? HUGE_LEAF : HUGE_LEAF | PTE_ZERO);
}

/** The PTE every page of a split PMD leaf inherits (__split_huge_pmd_locked()). */
function ptesOfHugePmd(pmd: number): number {
  const pte = PTE_PRESENT | (pmd & (PTE_UFFD_WP | PTE_SOFT_DIRTY | PTE_ZERO | PTE_FILE));
  // The pages of a THP stay one large folio until the folio itself is split.
  return pmd & PTE_ZERO ? pte : pte | PTE_LARGE_FOLIO;
}

/**
 * split_huge_pmd(): the PMD leaf mapping the block of addr becomes a PTE table of 512 entries
 * that keep its uffd-wp, soft-dirty and zero-page state.
 */
export function splitHugePmd(mm: MmStruct, addr: number): void {
  const block = roundDown(addr, PMD_SIZE);
  const pmd = mm.pmd.get(block);
  if (!isHugeLeaf(pmd)) return;
  // A file THP is only unmapped: the PMD is cleared and later faults map its pages again.
  if (pmd! & PTE_FILE) {
    mm.pmd.set(block, block + PMD_SIZE, undefined);
    return;
  }
  mm.pmd.set(block, block + PMD_SIZE, TABLE);
  mm.pte.set(block, block + PMD_SIZE, ptesOfHugePmd(pmd!));
}

/**
 * split_folio() of the anonymous large folio in the block of addr, wherever it is mapped (PMD or
 * PTEs): the pages become small folios, and those that hold only zeros are mapped to the shared
 * zero page instead (remap_page() with RMP_USE_SHARED_ZEROPAGE), keeping uffd-wp and soft-dirty.
 */
export function splitFolio(mm: MmStruct, addr: number): void {
  const block = roundDown(addr, PMD_SIZE);
  const pmd = mm.pmd.get(block);
  if (isHugeLeaf(pmd) && pmd! & PTE_ZERO) return; // the huge zero page is not split
  splitHugePmd(mm, block);
  if (!isTable(mm.pmd.get(block))) return;
  const end = block + PMD_SIZE;
  for (const run of [...mm.pte.map.runs(mm.pte.index(block), mm.pte.index(end))]) {
    if (!ptePresent(run.value) || !(run.value & PTE_LARGE_FOLIO)) continue;
    const small = run.value & ~PTE_LARGE_FOLIO;
    const zero = PTE_PRESENT | PTE_ZERO | (run.value & (PTE_UFFD_WP | PTE_SOFT_DIRTY));
    for (const seg of [...mm.data.segments(run.start, run.end)]) {
      mm.pte.map.set(seg.start, seg.end, seg.value || !mm.profile.thpSplitZeroRemap ? small : zero);
    }
  }
}

/** The blocks holding (PTE-mapped or PMD-mapped) anonymous large folios in [start, end). */
export function largeFolioBlocks(mm: MmStruct, start: number, end: number): number[] {
  const out = new Set<number>([...mm.hugeLeavesIn(start, end)]);
  for (const run of mm.pte.map.runs(mm.pte.index(start), mm.pte.index(end))) {
    if (!(run.value & PTE_LARGE_FOLIO) || !ptePresent(run.value)) continue;
    for (let b = roundDown(run.start * 4096, PMD_SIZE); b < run.end * 4096; b += PMD_SIZE) out.add(b);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * MADV_COLLAPSE over [start, end) of one VMA (madvise_collapse()): each 2 MiB block wholly inside
 * becomes a THP. Refusals that let the walk go on (a hole, uffd-wp entries) make the call fail
 * with EINVAL at the end; a none slot in a uffd-armed VMA stops it with EBUSY.
 */
export function madviseCollapse(mm: MmStruct, vma: Vma, start: number, end: number): ErrnoName | null {
  if (vma.thp === 'nohugepage' || !thpSuitable(vma)) return 'EINVAL';
  // A range inside one block leaves hstart past hend: the unsigned block count never matches.
  if (roundUp(start, PMD_SIZE) > roundDown(end, PMD_SIZE)) return 'EINVAL';
  if (vma.mapping?.shmem) return collapseShmem(mm, vma, start, end);
  if (!vmaIsAnonymous(vma)) return 'EINVAL';
  // hugepage_vma_revalidate(): an anonymous VMA with no anon_vma yet is SCAN_PAGE_ANON.
  if (vma.anonVma === null) return 'EINVAL';
  const hstart = roundUp(start, PMD_SIZE);
  const hend = roundDown(end, PMD_SIZE);
  let failed: ErrnoName | null = null;
  for (let block = hstart; block < hend; block += PMD_SIZE) {
    const result = collapseBlock(mm, vma, block);
    if (result === 'EBUSY') return result;
    if (result) failed = result;
  }
  return failed;
}

/**
 * MADV_COLLAPSE of a shmem-backed VMA (hpage_collapse_scan_file(), collapse_file(), then
 * collapse_pte_mapped_thp()): each block with at least one page in the file becomes one huge
 * folio in the page cache, mapped here by a PMD. A block of the file with no page is EINVAL.
 */
function collapseShmem(mm: MmStruct, vma: Vma, start: number, end: number): ErrnoName | null {
  const m = vma.mapping!;
  let failed: ErrnoName | null = null;
  for (let block = roundUp(start, PMD_SIZE); block + PMD_SIZE <= roundDown(end, PMD_SIZE); block += PMD_SIZE) {
    const lo = (block - vma.fileBase!) / 4096;
    if (lo % 512 !== 0 || !m.cache.any(lo, lo + 512)) {
      failed = 'EINVAL';
      continue;
    }
    const pmd = mm.pmd.get(block);
    const entries = [...mm.pte.map.runs(mm.pte.index(block), mm.pte.index(block + PMD_SIZE))];
    if (vma.uffd || (isTable(pmd) && entries.some((r) => !ptePresent(r.value) || !(r.value & PTE_FILE)))) {
      throw new NotModelled('MADV_COLLAPSE of shmem over anonymous pages, markers or a uffd registration is not modelled yet');
    }
    m.cache.set(lo, lo + 512, 1);
    if (isHugeLeaf(pmd)) continue;
    mm.pte.set(block, block + PMD_SIZE, undefined);
    mm.allocPmdTables(block, block + PMD_SIZE);
    mm.pmd.set(block, block + PMD_SIZE, HUGE_LEAF | PTE_FILE);
  }
  return failed;
}

/**
 * __thp_vma_allowable_orders() outside faults: a huge page must fit at the end of the VMA, at an
 * offset of its file that is aligned too.
 */
function thpSuitable(vma: Vma): boolean {
  const haddr = roundDown(vma.end - PMD_SIZE, PMD_SIZE);
  if (haddr < vma.start) return false;
  return vma.fileBase === undefined || ((haddr - vma.fileBase) / 4096) % 512 === 0;
}

/** hpage_collapse_scan_pmd() and collapse_huge_page() for one block. */
function collapseBlock(mm: MmStruct, vma: Vma, block: number): ErrnoName | null {
  const pmd = mm.pmd.get(block);
  if (isHugeLeaf(pmd)) return null; // SCAN_PMD_MAPPED: already huge (the huge zero page too)
  if (!isTable(pmd)) return 'EINVAL'; // SCAN_PMD_NULL / SCAN_PMD_NONE
  const end = block + PMD_SIZE;
  const armed = vma.uffd !== 0;
  // The first entry that cannot be collapsed, in address order, decides.
  for (const seg of mm.pte.map.segments(mm.pte.index(block), mm.pte.index(end))) {
    const pte = seg.value;
    if (pte !== undefined && isSwapPte(pte)) {
      if (pteSwpUffdWpAny(pte)) return 'EINVAL'; // SCAN_PTE_UFFD_WP
      if (pteKind(pte) !== PTE_SWAP) return 'EINVAL'; // guard and poison markers cannot be swapped in
      continue; // swapped in by __collapse_huge_page_swapin()
    }
    if (pte === undefined || pte & PTE_ZERO) {
      if (armed) return 'EBUSY'; // SCAN_EXCEED_NONE_PTE
      continue;
    }
    if (pte & PTE_UFFD_WP) return 'EINVAL'; // SCAN_PTE_UFFD_WP
  }
  mm.pte.set(block, end, undefined);
  mm.pmd.set(block, end, HUGE_LEAF);
  return null;
}
