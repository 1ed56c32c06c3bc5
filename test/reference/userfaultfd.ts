// userfaultfd: UFFDIO_API / REGISTER / UNREGISTER / WRITEPROTECT and close (fs/userfaultfd.c,
// mm/userfaultfd.c, include/linux/userfaultfd_k.h), and change_protection() of mm/mprotect.c
// as uffd_wp_range() and mprotect() use it.

import {
  MMAP_MIN_ADDR,
  PAGE_SIZE,
  PROT_WRITE,
  TASK_SIZE,
  VM_UFFD_MINOR,
  VM_UFFD_MISSING,
  VM_UFFD_WP,
  addrEnd,
  PGDIR_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  type RefMm,
  type Thp,
  type Vma,
} from './mm';
import { hugetlbChangeProtection } from './hugetlb';

/** struct userfaultfd_ctx, reduced to its features. */
export interface UffdCtx {
  features: bigint;
  /** UFFD_FEATURE_SIGBUS: faults that would be delivered are SIGBUS instead. */
  sigbus: boolean;
}

export const UFFD_FEATURE_EVENT_REMOVE = 1n << 3n;
export const UFFD_FEATURE_EVENT_UNMAP = 1n << 6n;
export const UFFD_FEATURE_SIGBUS = 1n << 7n;
export const UFFD_FEATURE_WP_UNPOPULATED = 1n << 13n;
export const UFFD_FEATURE_WP_ASYNC = 1n << 15n;
/** UFFD_API_FEATURES on x86-64 6.18: bits 0..16. */
export const UFFD_API_FEATURES = (1n << 17n) - 1n;
const UFFD_API_REGISTER_MODES = BigInt(VM_UFFD_MISSING | VM_UFFD_WP | VM_UFFD_MINOR);

type Errno = 'EINVAL' | 'EPERM' | 'ENOENT' | 'EBADF' | 'EBUSY';

/** userfaultfd_wp(): VM_UFFD_WP */
export const userfaultfdWp = (vma: Vma): boolean => (vma.uffd & VM_UFFD_WP) !== 0;

/** userfaultfd_wp_async(): the VMA's context (registered at all) has WP_ASYNC. */
export const userfaultfdWpAsync = (vma: Vma, ctx: UffdCtx | null): boolean =>
  vma.uffd !== 0 && ctx !== null && (ctx.features & UFFD_FEATURE_WP_ASYNC) !== 0n;

/** userfaultfd_wp_use_markers(): file-based (hugetlb, shmem) always; anonymous with WP_UNPOPULATED. */
export const userfaultfdWpUseMarkers = (vma: Vma, ctx: UffdCtx | null): boolean =>
  userfaultfdWp(vma) && (vma.huge !== null || !!vma.shm || (ctx !== null && (ctx.features & UFFD_FEATURE_WP_UNPOPULATED) !== 0n));

/** The MM_CP_* flags of change_protection() that matter here. */
export interface ChangeProtection {
  uffdWp?: boolean;
  uffdWpResolve?: boolean;
  tryChangeWritable?: boolean;
}

/**
 * change_protection() over [start, end) of one anonymous VMA: change_protection_range() ->
 * change_p4d/pud/pmd_range() -> change_pte_range(), with vma->vm_page_prot, which for a private
 * mapping never allows writing.
 */
export function changeProtection(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, cp: ChangeProtection): void {
  // change_prepare() at every level: with markers in use a WP allocates all missing tables.
  const prepare = cp.uffdWp === true && userfaultfdWpUseMarkers(vma, ctx);
  for (let addr = start; addr < end; addr = addrEnd(addr, end, PGDIR_SIZE)) {
    if (prepare) mm.pudAlloc(addr);
  }
  for (let addr = start; addr < end; addr = addrEnd(addr, end, PUD_SIZE)) {
    if (prepare) mm.pmdAlloc(addr);
  }
  for (let addr = start; addr < end; ) {
    const next = addrEnd(addr, end, PMD_SIZE);
    const thp = mm.thpGet(addr);
    if (thp && next - addr === PMD_SIZE) {
      changeHugePmd(vma, thp, cp);
      addr = next;
      continue;
    }
    if (thp) mm.splitHugePmd(addr); // a PMD leaf covered in part: __split_huge_pmd()
    if (prepare) mm.pteAlloc(addr); // change_pmd_prepare()
    if (mm.hasPteTable(addr)) changePteRange(mm, ctx, vma, addr, next, cp);
    addr = next;
  }
}

/** change_huge_pmd() of an anonymous PMD leaf (the huge zero page too). */
function changeHugePmd(vma: Vma, thp: Thp, cp: ChangeProtection): void {
  if (cp.uffdWp) thp.wp = true;
  else if (cp.uffdWpResolve) thp.wp = false;
  // pmd_modify() with vm_page_prot (never writable), then can_change_pmd_writable().
  thp.writable = !thp.zero && cp.tryChangeWritable === true && (vma.prot & PROT_WRITE) !== 0 && !(thp.wp && userfaultfdWp(vma));
}

/** change_pte_range() */
function changePteRange(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, cp: ChangeProtection): void {
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const old = mm.pteGet(addr);
    if (old === undefined) {
      // Nobody plays with none ptes besides userfaultfd when applying protections.
      if (cp.uffdWp && userfaultfdWpUseMarkers(vma, ctx)) mm.pteSet(addr, { kind: 'marker' });
      continue;
    }
    switch (old.kind) {
      case 'file':
        // A shmem page: only the bit changes (write permission is not visible here).
        if (cp.uffdWp) mm.pteSet(addr, { kind: 'file', wp: true });
        else if (cp.uffdWpResolve) mm.pteSet(addr, { kind: 'file', wp: false });
        break;
      case 'page':
      case 'zero': {
        // pte_modify(oldpte, newprot): write permission comes from vm_page_prot, i.e. none.
        let wp = old.wp;
        if (cp.uffdWp) wp = true;
        else if (cp.uffdWpResolve) wp = false;
        if (old.kind === 'zero') {
          mm.pteSet(addr, { kind: 'zero', wp });
          break;
        }
        // MM_CP_TRY_CHANGE_WRITABLE: can_change_pte_writable() for an exclusive anonymous page.
        const writable = cp.tryChangeWritable === true && (vma.prot & PROT_WRITE) !== 0 && !(wp && userfaultfdWp(vma));
        mm.pteSet(addr, { ...old, wp, writable });
        break;
      }
      case 'marker':
        // A uffd-wp marker: dropped when un-protecting, untouched otherwise.
        if (cp.uffdWpResolve) mm.pteSet(addr, undefined);
        break;
      case 'guard':
        // Guard (and poison) markers are ignored unconditionally.
        break;
      case 'swap':
        if (cp.uffdWp) mm.pteSet(addr, { kind: 'swap', wp: true });
        else if (cp.uffdWpResolve) mm.pteSet(addr, { kind: 'swap', wp: false });
        break;
    }
  }
}

/** uffd_wp_range() */
export function uffdWpRange(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, enableWp: boolean): void {
  if (vma.huge) hugetlbChangeProtection(mm, vma, start, end, enableWp ? { uffdWp: true } : { uffdWpResolve: true });
  else if (enableWp) changeProtection(mm, ctx, vma, start, end, { uffdWp: true });
  // vma_wants_manual_pte_write_upgrade(): a private mapping with VM_WRITE.
  else changeProtection(mm, ctx, vma, start, end, { uffdWpResolve: true, tryChangeWritable: (vma.prot & PROT_WRITE) !== 0 });
}

/** validate_range() */
function validateRange(start: bigint, len: bigint): boolean {
  if (start % BigInt(PAGE_SIZE) !== 0n) return false;
  if (len % BigInt(PAGE_SIZE) !== 0n || len === 0n) return false;
  if (start < BigInt(MMAP_MIN_ADDR) || start >= BigInt(TASK_SIZE)) return false;
  if (len > BigInt(TASK_SIZE) - start) return false;
  return true;
}

/** UFFDIO_API on a fresh context. */
export function userfaultfdApi(features: bigint): { ctx: UffdCtx | null; errno: Errno | null } {
  // WP_ASYNC relies on WP_UNPOPULATED: chosen unconditionally.
  if (features & UFFD_FEATURE_WP_ASYNC) features |= UFFD_FEATURE_WP_UNPOPULATED;
  if (features & ~UFFD_API_FEATURES) return { ctx: null, errno: 'EINVAL' };
  return { ctx: { features, sigbus: (features & UFFD_FEATURE_SIGBUS) !== 0n }, errno: null };
}

/** vma_can_userfault() */
function vmaCanUserfault(vma: Vma, vmFlags: number, wpAsync: boolean): boolean {
  if (vmFlags & VM_UFFD_MINOR && !vma.huge && !vma.shm) return false; // only hugetlb and shmem
  if (wpAsync && vmFlags === VM_UFFD_WP) return true;
  return true; // anonymous memory, hugetlb and shmem take any mode
}

/** vma_kernel_pagesize() */
const pageSizeOf = (vma: Vma): number => (vma.huge ? vma.huge.size : PAGE_SIZE);

/** UFFDIO_REGISTER -> userfaultfd_register() -> userfaultfd_register_range() */
export function userfaultfdRegister(mm: RefMm, ctx: UffdCtx, start: bigint, len: bigint, mode: bigint): Errno | null {
  if (mode === 0n || mode & ~UFFD_API_REGISTER_MODES) return 'EINVAL';
  const vmFlags = Number(mode);
  if (!validateRange(start, len)) return 'EINVAL';
  const s = Number(start);
  const e = Number(start + len);
  const vmas = mm.vmasIntersecting(s, e);
  if (vmas.length === 0) return 'EINVAL';
  // The first VMA decides whether the start must be huge-page aligned (even when the range
  // starts in a gap before it); the VMA holding the end, whether the end must be.
  if (s % pageSizeOf(vmas[0]) !== 0) return 'EINVAL';
  const wpAsync = (ctx.features & UFFD_FEATURE_WP_ASYNC) !== 0n;
  for (const cur of vmas) {
    if (!vmaCanUserfault(cur, vmFlags, wpAsync)) return 'EINVAL';
    // VM_MAYWRITE is always set on the mappings made here: no EPERM. No other context
    // exists in this model: no EBUSY.
    if (cur.huge && e <= cur.end && e > cur.start && e % cur.huge.size !== 0) return 'EINVAL';
  }
  for (const vma of vmas) {
    // Nothing to do: already registered into this userfaultfd with (at least) these modes.
    if (vma.uffd !== 0 && (vma.uffd & vmFlags) === vmFlags) continue;
    for (const part of mm.isolate(Math.max(s, vma.start), Math.min(e, vma.end))) part.uffd = vmFlags;
  }
  mm.mergeAround(s, e);
  return null;
}

/** userfaultfd_clear_vma(): un-protect what is write-protected, drop the registration. */
function userfaultfdClearVma(mm: RefMm, ctx: UffdCtx | null, vma: Vma): void {
  if (userfaultfdWp(vma)) uffdWpRange(mm, ctx, vma, vma.start, vma.end, false);
  vma.uffd = 0;
}

/**
 * userfaultfd_clear_vma() on [start, end) of vma: the un-protect comes first, then
 * vma_modify_flags_uffd(), whose split can fail on a hugetlb VMA (EINVAL, the range stays
 * un-protected and registered).
 */
function userfaultfdClearRange(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number): 'EINVAL' | null {
  if (userfaultfdWp(vma)) uffdWpRange(mm, ctx, vma, start, end, false);
  if (!mm.mayIsolate(start, end)) return 'EINVAL';
  for (const part of mm.isolate(start, end)) part.uffd = 0;
  return null;
}

/** UFFDIO_UNREGISTER -> userfaultfd_unregister() */
export function userfaultfdUnregister(mm: RefMm, ctx: UffdCtx, start: bigint, len: bigint): Errno | null {
  if (!validateRange(start, len)) return 'EINVAL';
  const s = Number(start);
  const e = Number(start + len);
  const vmas = mm.vmasIntersecting(s, e);
  if (vmas.length === 0) return 'EINVAL';
  if (s % pageSizeOf(vmas[0]) !== 0) return 'EINVAL'; // the first VMA only; no check of the end
  // (vma_can_userfault() of the current modes always holds.)
  let err: 'EINVAL' | null = null;
  for (const vma of vmas) {
    if (vma.uffd === 0) continue;
    err = userfaultfdClearRange(mm, ctx, vma, Math.max(s, vma.start), Math.min(e, vma.end));
    if (err) break;
  }
  mm.mergeAround(s, e);
  return err;
}

/** Closing the file: userfaultfd_release() -> userfaultfd_release_all(). */
export function userfaultfdRelease(mm: RefMm, ctx: UffdCtx): void {
  for (const vma of [...mm.vmas]) if (vma.uffd !== 0) userfaultfdClearVma(mm, ctx, vma);
  mm.mergeAround(0, TASK_SIZE);
}

/** UFFDIO_WRITEPROTECT -> mwriteprotect_range() */
export function userfaultfdWriteprotect(mm: RefMm, ctx: UffdCtx, start: bigint, len: bigint, wp: boolean): Errno | null {
  if (!validateRange(start, len)) return 'EINVAL';
  const s = Number(start);
  const e = Number(start + len);
  let err: Errno | null = 'ENOENT';
  for (const vma of mm.vmasIntersecting(s, e)) {
    if (!userfaultfdWp(vma)) return 'ENOENT';
    if (vma.huge && (s % vma.huge.size !== 0 || Number(len) % vma.huge.size !== 0)) return 'EINVAL';
    uffdWpRange(mm, ctx, vma, Math.max(s, vma.start), Math.min(e, vma.end), wp);
    err = null;
  }
  return err;
}
