// MADV_COLLAPSE (mm/khugepaged.c): madvise_collapse() block by block, for anonymous memory
// (hpage_collapse_scan_pmd(), collapse_huge_page()) and for shmem (hpage_collapse_scan_file(),
// collapse_file(), retract_page_tables(), collapse_pte_mapped_thp()). khugepaged itself never
// runs here: it scans only VMAs the sysfs settings allow, and a scenario's THP probes catch it.

import { PAGE_SIZE, PMD_SIZE, type ErrnoName } from '../uapi';
import { roundDown, roundUp, type MmStruct } from './mm';
import {
  HUGE_LEAF,
  isGuardMarker,
  isHugeLeaf,
  isSwapPte,
  isTable,
  pteKind,
  ptePresent,
  pteSwpUffdWpAny,
  PTE_FILE,
  PTE_SWAP,
  PTE_UFFD_WP,
  PTE_ZERO,
} from './pte';
import { CACHED, tryToUnmapFile, type AddressSpace } from './filemap';
import { userfaultfdWp, vmaIsAnonymous, type Vma } from './vma';
import { UFFD_REGISTER_MODES } from '../uapi';

/** enum scan_result, the values this model reaches. */
type ScanResult =
  | 'SUCCEED'
  | 'FAIL'
  | 'PMD_NULL'
  | 'PMD_NONE'
  | 'PMD_MAPPED'
  | 'EXCEED_NONE_PTE'
  | 'PTE_NON_PRESENT'
  | 'PTE_UFFD_WP'
  | 'PTE_MAPPED_HUGEPAGE'
  | 'PAGE_ANON'
  | 'TRUNCATED';

/** madvise_collapse_errno() */
function madviseCollapseErrno(r: ScanResult): ErrnoName {
  return r === 'EXCEED_NONE_PTE' ? 'EBUSY' : 'EINVAL';
}

/** The results after which madvise_collapse() goes on with the next block (its whitelist). */
const CONTINUE_AFTER: ReadonlySet<ScanResult> = new Set(['PMD_NULL', 'PTE_NON_PRESENT', 'PTE_UFFD_WP']);

/**
 * madvise_collapse() over [start, end) of one VMA: each 2 MiB block wholly inside is collapsed in
 * turn. A failure on the whitelist lets the walk go on, any other stops it; the call fails with
 * the errno of the last failure unless every block ended up PMD-mapped.
 */
export function madviseCollapse(mm: MmStruct, vma: Vma, start: number, end: number): ErrnoName | null {
  // thp_vma_allowable_order(): disk files only with CONFIG_READ_ONLY_THP_FOR_FS, not here.
  if (vma.thp === 'nohugepage' || !thpSuitable(vma) || (vma.mapping && !vma.mapping.shmem)) return 'EINVAL';
  const hstart = roundUp(start, PMD_SIZE);
  const hend = roundDown(end, PMD_SIZE);
  // A range inside one block leaves hstart past hend: the unsigned block count never matches.
  if (hstart > hend) return 'EINVAL';
  if (!vma.mapping) {
    if (!vmaIsAnonymous(vma)) return 'EINVAL';
    // hugepage_vma_revalidate(): an anonymous VMA with no anon_vma yet is SCAN_PAGE_ANON.
    if (vma.anonVma === null) return 'EINVAL';
  }
  let lastFail: ScanResult | null = null;
  for (let addr = hstart; addr < hend; addr += PMD_SIZE) {
    let result = vma.mapping ? hpageCollapseScanFile(mm, vma, addr) : hpageCollapseScanPmd(mm, vma, addr);
    if (result === 'PTE_MAPPED_HUGEPAGE') result = collapsePteMappedThp(mm, vma, addr);
    if (result === 'SUCCEED' || result === 'PMD_MAPPED') continue;
    lastFail = result;
    if (!CONTINUE_AFTER.has(result)) break;
  }
  return lastFail === null ? null : madviseCollapseErrno(lastFail);
}

/**
 * __thp_vma_allowable_orders() outside faults (thp_vma_suitable_order()): a huge page must fit at
 * the end of the VMA, at an offset of its file that is aligned too. The sysfs settings do not
 * count for MADV_COLLAPSE (shmem_allowable_huge_orders() with shmem_huge_force; only "deny",
 * not modelled, would refuse).
 */
function thpSuitable(vma: Vma): boolean {
  const haddr = roundDown(vma.end - PMD_SIZE, PMD_SIZE);
  if (haddr < vma.start) return false;
  return vma.fileBase === undefined || ((haddr - vma.fileBase) / PAGE_SIZE) % 512 === 0;
}

// ---- anonymous memory ---------------------------------------------------------------------

/** hpage_collapse_scan_pmd() and collapse_huge_page() for one block of an anonymous VMA. */
function hpageCollapseScanPmd(mm: MmStruct, vma: Vma, block: number): ScanResult {
  // Already huge (the huge zero page too); no PMD table goes on, an empty PMD slot stops.
  const state = findPmdOrThpOrNone(mm, block);
  if (state !== 'SUCCEED') return state;
  const end = block + PMD_SIZE;
  const armed = vma.uffd !== 0;
  let marker = false;
  // The first entry that cannot be collapsed, in address order, decides.
  for (const seg of mm.pte.map.segments(mm.pte.index(block), mm.pte.index(end))) {
    const pte = seg.value;
    if (pte !== undefined && isSwapPte(pte)) {
      if (pteSwpUffdWpAny(pte)) return 'PTE_UFFD_WP';
      if (pteKind(pte) !== PTE_SWAP) marker = true;
      continue; // swapped in by __collapse_huge_page_swapin()
    }
    if (pte === undefined || pte & PTE_ZERO) {
      if (armed) return 'EXCEED_NONE_PTE';
      continue;
    }
    if (pte & PTE_UFFD_WP) return 'PTE_UFFD_WP';
  }
  // Guard and poison markers pass the scan but cannot be swapped in: collapse_huge_page() fails.
  if (marker) return 'FAIL';
  mm.pte.set(block, end, undefined);
  mm.pmd.set(block, end, HUGE_LEAF);
  return 'SUCCEED';
}

// ---- shmem --------------------------------------------------------------------------------

/** The page offset in the VMA's file of the page at addr (linear_page_index()). */
const linearPageIndex = (vma: Vma, addr: number): number => (addr - vma.fileBase!) / PAGE_SIZE;

/**
 * hpage_collapse_scan_file(): a block of the file that is already one huge folio goes straight to
 * collapse_pte_mapped_thp(); anything else (small pages, swapped-out pages, holes) to
 * collapse_file(). MADV_COLLAPSE ignores max_ptes_none and max_ptes_swap.
 */
function hpageCollapseScanFile(mm: MmStruct, vma: Vma, addr: number): ScanResult {
  const m = vma.mapping!;
  const start = linearPageIndex(vma, addr);
  if (m.isHugeFolio(start)) return 'PTE_MAPPED_HUGEPAGE';
  return collapseFile(mm, m, start);
}

/**
 * collapse_file() for shmem: the pages of [start, start + 512) of the file become one huge folio.
 * A block with no page at all was truncated (SCAN_TRUNCATED). Every small page is unmapped first
 * (try_to_unmap()), so even a collapse that fails later leaves them unmapped. Holes are filled
 * with zeroes, unless a VMA over the range is registered with userfaultfd MISSING (it might wait
 * for that fault: SCAN_EXCEED_NONE_PTE). On success the page tables mapping the block are
 * retracted where they can be.
 */
function collapseFile(mm: MmStruct, m: AddressSpace, start: number): ScanResult {
  const end = start + 512;
  if (!m.cache.any(start, end)) return 'TRUNCATED';
  // Swapped-out pages are read back (shmem_get_folio()); only the mapped ones are unmapped.
  for (const vma of vmasMappingRange(mm, m, start, end - 1)) {
    tryToUnmapFile(mm, vma, vma.fileBase! + start * PAGE_SIZE, vma.fileBase! + end * PAGE_SIZE);
  }
  const holes = [...m.cache.segments(start, end)].some((s) => s.value === undefined);
  // vma_interval_tree_foreach(vma, &mapping->i_mmap, start, end): the last index is inclusive.
  if (holes && vmasMappingRange(mm, m, start, end).some((v) => v.uffd & UFFD_REGISTER_MODES.MISSING)) {
    return 'EXCEED_NONE_PTE';
  }
  m.cache.set(start, end, CACHED);
  m.setHugeFolio(start);
  retractPageTables(mm, m, start);
  return 'PTE_MAPPED_HUGEPAGE';
}

/** The VMAs of this mm that map some page of [first, last] of the file (vma_interval_tree_foreach()). */
function vmasMappingRange(mm: MmStruct, m: AddressSpace, first: number, last: number): Vma[] {
  return mm.vmas.filter((v) => {
    if (v.mapping !== m) return false;
    const lo = linearPageIndex(v, v.start);
    const hi = linearPageIndex(v, v.end);
    return lo <= last && first < hi;
  });
}

/**
 * retract_page_tables(): the now empty PTE table of every VMA mapping the block is freed, so that
 * the huge folio can be mapped by a PMD. Skipped: a private VMA that has anonymous pages
 * (anon_vma), a block not aligned or not wholly inside, no table, a uffd-wp VMA (its table may
 * hold markers). 6.18.44 also keeps the tables of a VMA that may hold guard markers
 * (VM_MAYBE_GUARD); modelled as: the table holds one.
 */
function retractPageTables(mm: MmStruct, m: AddressSpace, pgoff: number): void {
  for (const vma of vmasMappingRange(mm, m, pgoff, pgoff)) {
    if (vma.anonVma !== null) continue;
    const addr = vma.fileBase! + pgoff * PAGE_SIZE;
    if (addr % PMD_SIZE !== 0 || vma.end < addr + PMD_SIZE || vma.start > addr) continue;
    if (findPmdOrThpOrNone(mm, addr) !== 'SUCCEED') continue;
    if (userfaultfdWp(vma) || holdsGuardMarker(mm, addr)) continue;
    mm.pte.set(addr, addr + PMD_SIZE, undefined);
    mm.pmd.set(addr, addr + PMD_SIZE, undefined);
  }
}

function holdsGuardMarker(mm: MmStruct, block: number): boolean {
  for (const run of mm.pte.map.runs(mm.pte.index(block), mm.pte.index(block + PMD_SIZE))) {
    if (isGuardMarker(run.value)) return true;
  }
  return false;
}

/** find_pmd_or_thp_or_none(): no PMD table (PMD_NULL), pmd_none (PMD_NONE), a THP, or a PTE table. */
function findPmdOrThpOrNone(mm: MmStruct, addr: number): 'PMD_NULL' | 'PMD_NONE' | 'PMD_MAPPED' | 'SUCCEED' {
  if (!isTable(mm.p4d.get(addr)) || !isTable(mm.pud.get(addr))) return 'PMD_NULL';
  const pmd = mm.pmd.get(addr);
  if (pmd === undefined) return 'PMD_NONE';
  return isHugeLeaf(pmd) ? 'PMD_MAPPED' : 'SUCCEED';
}

/**
 * collapse_pte_mapped_thp(install_pmd = true): map the block's huge folio by a PMD in place of
 * its PTE table. Never in a uffd-wp VMA (SCAN_PTE_UFFD_WP), nor without a PMD table
 * (SCAN_PMD_NULL). Every non-none entry must map the folio: a marker or swap entry is
 * SCAN_PTE_NON_PRESENT, and an anonymous copy-on-write page is a plain failure (SCAN_FAIL),
 * the first such entry in address order deciding.
 */
function collapsePteMappedThp(mm: MmStruct, vma: Vma, haddr: number): ScanResult {
  const state = findPmdOrThpOrNone(mm, haddr);
  if (state === 'PMD_MAPPED') return 'PMD_MAPPED';
  if (userfaultfdWp(vma)) return 'PTE_UFFD_WP';
  if (state === 'PMD_NULL') return 'PMD_NULL';
  if (state === 'SUCCEED') {
    for (const run of mm.pte.map.runs(mm.pte.index(haddr), mm.pte.index(haddr + PMD_SIZE))) {
      if (!ptePresent(run.value)) return 'PTE_NON_PRESENT';
      if (!(run.value & PTE_FILE)) return 'FAIL'; // folio_page(folio, i) != page
    }
    mm.pte.set(haddr, haddr + PMD_SIZE, undefined);
  }
  // set_huge_pmd() -> do_set_pmd()
  mm.pmd.set(haddr, haddr + PMD_SIZE, HUGE_LEAF | PTE_FILE);
  return 'SUCCEED';
}
