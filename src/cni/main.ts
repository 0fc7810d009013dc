// The process face of vio4wd-cni: stdin and CNI_* in, the result or error JSON out.
import { runPlugin } from './plugin.js';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs the plugin for this process; returns its exit code. */
export async function cniMain(): Promise<number> {
  const out = await runPlugin({ env: process.env, stdin: await readStdin() });
  if (out.stdout) process.stdout.write(out.stdout);
  return out.exitCode;
}
