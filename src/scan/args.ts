// pagemap_scan_get_args(): validation of struct pm_scan_arg, in the kernel's order, and the
// defaults it applies. The result keeps u64 fields exact: addresses that pass access_ok() fit
// in a double, the rest stay bigint.

import { PM_SCAN_ARG_SIZE, PM_SCAN_FLAGS, PAGE_REGION_SIZE, PAGE_SIZE, TASK_SIZE_MAX, U64_MAX } from '../uapi';
import type { PmScanArg } from '../uapi';
import { DEFAULT_PROFILE, PROFILES, type KernelProfile } from '../profiles';

/** The validated arguments of one scan, as do_pagemap_scan() uses them. */
export interface ScanArgs {
  flags: number;
  start: number;
  /** Rounded up to a page. */
  end: number;
  vec: bigint;
  vec_len: bigint;
  /**
   * 0 means unlimited (ULONG_MAX in the kernel). Any budget above 2^52 pages is unreachable
   * (a user address space has 2^35 pages), so it is held as 2^52: the comparisons the kernel
   * makes give the same answers.
   */
  max_pages: number;
  category_inverted: number;
  category_mask: number;
  category_anyof_mask: number;
  return_mask: number;
}

export type ArgsResult = { ok: true; args: ScanArgs } | { ok: false; errno: 'EINVAL' | 'EFAULT' };

const UNREACHABLE_PAGES = 2 ** 52;

/** access_ok(addr, size) on x86-64: the whole range lies in the user half, without wrapping. */
export function accessOk(addr: bigint, size: bigint): boolean {
  const sum = addr + size;
  return sum <= U64_MAX && sum <= BigInt(TASK_SIZE_MAX);
}

export function pagemapScanGetArgs(arg: PmScanArg, profile: KernelProfile = PROFILES[DEFAULT_PROFILE]): ArgsResult {
  if (arg.size !== PM_SCAN_ARG_SIZE) return { ok: false, errno: 'EINVAL' };
  if (arg.flags & ~BigInt(PM_SCAN_FLAGS)) return { ok: false, errno: 'EINVAL' };
  const masks = arg.category_inverted | arg.category_mask | arg.category_anyof_mask | arg.return_mask;
  if (masks & ~BigInt(profile.categories)) return { ok: false, errno: 'EINVAL' };
  // untagged_addr() is the identity on x86-64 without LAM.
  if (arg.start % BigInt(PAGE_SIZE) !== 0n) return { ok: false, errno: 'EINVAL' };
  // end - start wraps modulo 2^64 in the kernel: a reversed range becomes a huge size.
  const size = (arg.end - arg.start) & U64_MAX;
  if (!accessOk(arg.start, size)) return { ok: false, errno: 'EFAULT' };
  if (arg.vec === 0n && arg.vec_len !== 0n) return { ok: false, errno: 'EINVAL' };
  // size_mul() saturates at SIZE_MAX; older kernels multiplied modulo 2^64.
  const product = arg.vec_len * PAGE_REGION_SIZE;
  const vecBytes = product <= U64_MAX ? product : profile.vecLenSaturates ? U64_MAX : product & U64_MAX;
  if (arg.vec !== 0n && !accessOk(arg.vec, vecBytes)) return { ok: false, errno: 'EFAULT' };

  const page = BigInt(PAGE_SIZE);
  const end = ((arg.end + page - 1n) / page) * page;
  return {
    ok: true,
    args: {
      flags: Number(arg.flags),
      start: Number(arg.start),
      end: Number(end),
      vec: arg.vec,
      vec_len: arg.vec_len,
      max_pages: arg.max_pages === 0n || arg.max_pages > BigInt(UNREACHABLE_PAGES) ? UNREACHABLE_PAGES : Number(arg.max_pages),
      category_inverted: Number(arg.category_inverted),
      category_mask: Number(arg.category_mask),
      category_anyof_mask: Number(arg.category_anyof_mask),
      return_mask: Number(arg.return_mask),
    },
  };
}
