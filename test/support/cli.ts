// Running the CLI in-process with captured output.

import { main } from '../../src/cli/main';
import type { Io } from '../../src/cli/io';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export async function cli(args: string[], env: NodeJS.ProcessEnv = {}, isTTY = false): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l), env, isTTY };
  const code = await main(['node', 'pagemap-scan', ...args], io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}
