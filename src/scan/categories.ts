// Classification and filtering: pagemap_page_category(), pagemap_thp_category(),
// pagemap_scan_is_interesting_page(), pagemap_scan_is_interesting_vma() (fs/proc/task_mmu.c).
// Pure functions of an entry and the scan arguments.

import {
  PAGE_IS_FILE,
  PAGE_IS_GUARD,
  PAGE_IS_HUGE,
  PAGE_IS_PFNZERO,
  PAGE_IS_PRESENT,
  PAGE_IS_SOFT_DIRTY,
  PAGE_IS_SWAPPED,
  PAGE_IS_WPALLOWED,
  PAGE_IS_WRITTEN,
} from '../uapi';
import {
  isGuardMarker,
  isSwapPte,
  ptePresent,
  pteSwpUffdWpAny,
  pteUffdWp,
  PTE_FILE,
  PTE_SOFT_DIRTY,
  PTE_SWAP,
  PTE_UFFD_WP,
  PTE_ZERO,
  pteKind,
  isHugeLeaf,
  type Pte,
} from '../mm/pte';
import type { ScanArgs } from './args';
import type { KernelProfile } from '../profiles';

/** The masks one scan filters with (a subset of ScanArgs). */
export type Filter = Pick<ScanArgs, 'category_inverted' | 'category_mask' | 'category_anyof_mask'>;

/** pagemap_page_category(); pte undefined is pte_none. */
export function pageCategory(pte: Pte | undefined, wantFile: boolean, profile: KernelProfile): number {
  if (pte === undefined) return profile.noneIsWritten ? PAGE_IS_WRITTEN : 0;
  let categories = 0;
  if (ptePresent(pte)) {
    categories = PAGE_IS_PRESENT;
    if (!pteUffdWp(pte)) categories |= PAGE_IS_WRITTEN;
    // vm_normal_page() is NULL for the zero page, so it is never FILE.
    if (wantFile && pte & PTE_FILE && !(pte & PTE_ZERO)) categories |= PAGE_IS_FILE;
    if (pte & PTE_ZERO) categories |= PAGE_IS_PFNZERO;
    if (pte & PTE_SOFT_DIRTY) categories |= PAGE_IS_SOFT_DIRTY;
  } else if (isSwapPte(pte)) {
    categories = PAGE_IS_SWAPPED;
    if (!pteSwpUffdWpAny(pte)) categories |= PAGE_IS_WRITTEN;
    if (isGuardMarker(pte) && profile.guardCategory) categories |= PAGE_IS_GUARD;
    if (pte & PTE_SOFT_DIRTY && pteKind(pte) === PTE_SWAP) categories |= PAGE_IS_SOFT_DIRTY;
  }
  return categories;
}

/** pagemap_thp_category() for a present PMD leaf. */
export function thpCategory(pmd: number, wantFile: boolean, profile: KernelProfile): number {
  let categories = PAGE_IS_PRESENT | PAGE_IS_HUGE;
  if (!(pmd & PTE_UFFD_WP)) categories |= PAGE_IS_WRITTEN;
  if (wantFile && pmd & PTE_FILE && !(pmd & PTE_ZERO)) categories |= PAGE_IS_FILE;
  if (pmd & PTE_ZERO && profile.hugeZeroPfnzero) categories |= PAGE_IS_PFNZERO;
  if (pmd & PTE_SOFT_DIRTY) categories |= PAGE_IS_SOFT_DIRTY;
  return categories;
}

/** pagemap_scan_is_interesting_page() */
export function isInterestingPage(categories: number, f: Filter): boolean {
  const t = categories ^ f.category_inverted;
  if ((t & f.category_mask) !== f.category_mask) return false;
  if (f.category_anyof_mask && !(t & f.category_anyof_mask)) return false;
  return true;
}

/** pagemap_scan_is_interesting_vma(): only PAGE_IS_WPALLOWED of category_mask counts here. */
export function isInterestingVma(categories: number, f: Filter): boolean {
  const required = f.category_mask & PAGE_IS_WPALLOWED;
  return ((categories ^ f.category_inverted) & required) === required;
}


/** pagemap_hugetlb_category() for a hugetlb slot that has a table (entry undefined: none). */
export function hugetlbCategory(entry: number | undefined): number {
  let categories = PAGE_IS_HUGE;
  if (entry === undefined) return categories;
  if (isHugeLeaf(entry)) {
    categories |= PAGE_IS_PRESENT;
    if (!(entry & PTE_UFFD_WP)) categories |= PAGE_IS_WRITTEN;
    if (entry & PTE_FILE) categories |= PAGE_IS_FILE;
    if (entry & PTE_SOFT_DIRTY) categories |= PAGE_IS_SOFT_DIRTY;
  } else {
    // a uffd-wp marker
    categories |= PAGE_IS_SWAPPED;
  }
  return categories;
}
