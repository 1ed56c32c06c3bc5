// What parsing needs to know about the kernel profiles a scenario may name with `kernel:`.
// The profiles themselves (and which exist) are src/profiles.ts; this adds the page size behind
// `64p` sizes and the default `stride`.

import { DEFAULT_PROFILE, PROFILES, profileNamed } from '../profiles';
import { PAGE_SIZE } from '../uapi';

/** The newest supported profile: the default when a scenario has no `kernel:`. */
export const DEFAULT_KERNEL = DEFAULT_PROFILE;

/** The names `kernel:` accepts. */
export function knownKernels(): string[] {
  return Object.keys(PROFILES);
}

/** Bytes per page under `kernel` (every profile so far: x86-64, 4 KiB), undefined if unknown. */
export function pageSizeOf(kernel: string): bigint | undefined {
  return profileNamed(kernel) ? BigInt(PAGE_SIZE) : undefined;
}
