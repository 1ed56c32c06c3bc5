// Transparent huge pages at the PMD level (mm/huge_memory.c).

import { PMD_SIZE } from '../uapi';
import { roundDown, type MmStruct } from './mm';
import { isHugeLeaf, PTE_FILE, PTE_PRESENT, PTE_SOFT_DIRTY, PTE_UFFD_WP, PTE_ZERO, TABLE } from './pte';

/** The PTE every page of a split PMD leaf inherits (__split_huge_pmd_locked()). */
function ptesOfHugePmd(pmd: number): number {
  return PTE_PRESENT | (pmd & (PTE_UFFD_WP | PTE_SOFT_DIRTY | PTE_ZERO | PTE_FILE));
}

/**
 * split_huge_pmd(): turn the anonymous THP (or huge zero page) mapping the block of addr into
 * a PTE table of 512 entries that keep its uffd-wp, soft-dirty and zero-page state.
 */
export function splitHugePmd(mm: MmStruct, addr: number): void {
  const block = roundDown(addr, PMD_SIZE);
  const pmd = mm.pmd.get(block);
  if (!isHugeLeaf(pmd)) return;
  mm.pmd.set(block, block + PMD_SIZE, TABLE);
  mm.pte.set(block, block + PMD_SIZE, ptesOfHugePmd(pmd!));
}
