// Where the CLI writes, so commands run in-process in tests as they do from a shell.

import type { Chalk } from 'chalk';
import { makeChalk } from './color';

export interface Io {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** Whether standard output is a terminal (for colour). */
  isTTY: boolean;
}

export function processIo(): Io {
  // A reader that goes away (`| head`) ends the output, not the program with a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  return {
    out: (line) => process.stdout.write(line + '\n'),
    err: (line) => process.stderr.write(line + '\n'),
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
  };
}

export const plainChalk: Chalk = makeChalk(0);
