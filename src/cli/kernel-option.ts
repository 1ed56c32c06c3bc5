// `--kernel PROFILE`: overrides the scenario's `kernel:`.

import { InputError } from '../errors';
import { PROFILES } from '../profiles';
import type { Program } from '../scenario/program';

export function withKernel(program: Program, kernel: string | undefined): Program {
  if (kernel === undefined) return program;
  if (!Object.hasOwn(PROFILES, kernel)) {
    throw new InputError({ file: '--kernel' }, undefined, `unknown kernel profile ${kernel}; known: ${Object.keys(PROFILES).join(', ')}`);
  }
  return { ...program, kernel };
}
