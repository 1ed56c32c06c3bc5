// Transparent huge pages (mm/huge_memory.c): which blocks fault in as THPs, splitting a PMD
// mapping, splitting the folio itself. MADV_COLLAPSE is in khugepaged.ts.

import { PMD_SIZE } from '../uapi';
import type { SystemConfig } from '../scenario/program';
import { roundDown, type MmStruct } from './mm';
import {
  HUGE_LEAF,
  isHugeLeaf,
  isTable,
  ptePresent,
  PTE_FILE,
  PTE_LARGE_FOLIO,
  PTE_LAZYFREE,
  PTE_LAZYFREE_DIRTY,
  PTE_PRESENT,
  PTE_SOFT_DIRTY,
  PTE_UFFD_WP,
  PTE_ZERO,
  TABLE,
} from './pte';
import { vmaIsAnonymous, type Vma } from './vma';
import { fileCold } from './filemap';

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

/**
 * The PTE every page of a split PMD leaf inherits (__split_huge_pmd_locked()); a lazily-freed
 * folio stays lazily freed (clean or written since).
 */
function ptesOfHugePmd(pmd: number): number {
  const pte = PTE_PRESENT | (pmd & (PTE_UFFD_WP | PTE_SOFT_DIRTY | PTE_ZERO | PTE_FILE | PTE_LAZYFREE | PTE_LAZYFREE_DIRTY));
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
 * MADV_COLD (madvise_cold_or_pageout_pte_range() without pageout): a large folio the range maps
 * only in part is split (split_folio()), which maps the zero-filled pages of an anonymous one to
 * the zero page and unmaps a page-cache one; a folio mapped whole is only deactivated.
 */
export function madviseColdLargeFolios(mm: MmStruct, vma: Vma, start: number, end: number): void {
  if (vma.mapping) return fileCold(mm, vma, start, end);
  if (vmaIsAnonymous(vma)) splitPartialLargeFolios(mm, start, end);
}

/**
 * madvise_cold_or_pageout_pte_range() and madvise_free_pte_range(): an anonymous large folio
 * that [start, end) does not map whole (not all in the range, or not all in one batch of PTEs)
 * is split (split_folio()).
 */
export function splitPartialLargeFolios(mm: MmStruct, start: number, end: number): void {
  for (const block of largeFolioBlocks(mm, start, end)) {
    if (block >= start && block + PMD_SIZE <= end && mappedWhole(mm, block)) continue;
    splitFolio(mm, block);
  }
}

/** PTE differences folio_pte_batch() ignores here (FPB_IGNORE_DIRTY, FPB_IGNORE_SOFT_DIRTY). */
const BATCH_IGNORED = PTE_SOFT_DIRTY | PTE_LAZYFREE | PTE_LAZYFREE_DIRTY;

/** The block's large folio is mapped by its PMD, or by 512 PTEs of one batch. */
export function mappedWhole(mm: MmStruct, block: number): boolean {
  if (isHugeLeaf(mm.pmd.get(block))) return true;
  const end = mm.pte.index(block + PMD_SIZE);
  let at = mm.pte.index(block);
  let batch: number | undefined;
  for (const run of mm.pte.map.runs(at, end)) {
    if (run.start !== at || !ptePresent(run.value) || !(run.value & PTE_LARGE_FOLIO)) return false;
    if ((batch ??= run.value & ~BATCH_IGNORED) !== (run.value & ~BATCH_IGNORED)) return false;
    at = run.end;
  }
  return at === end;
}

// MADV_COLLAPSE is madvise_collapse() of mm/khugepaged.c: see khugepaged.ts.
export { madviseCollapse } from './khugepaged';
