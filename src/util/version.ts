// The package version, read once from package.json next to dist/ or src/.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(join(here, '..', '..', 'package.json'), 'utf8')) as { version: string };

export const VERSION: string = pkg.version;

/** The git commit vio4wd runs from: $VIO4WD_GIT_COMMIT (set when an image is built), else read
 *  from the checkout's .git (a worktree's .git file is followed; no git binary is run), else
 *  'unknown'. Read once. */
export const GIT_COMMIT: string = process.env.VIO4WD_GIT_COMMIT?.trim() || readCommit(join(here, '..', '..')) || 'unknown';

function readCommit(root: string): string | undefined {
  try {
    let gitDir = join(root, '.git');
    let common = gitDir;
    const dotGit = readFileSafe(gitDir);
    if (dotGit?.startsWith('gitdir:')) {
      gitDir = dotGit.slice(7).trim();
      common = readFileSafe(join(gitDir, 'commondir'))?.trim() ?? gitDir;
      if (!common.startsWith('/')) common = join(gitDir, common);
    }
    const head = readFileSafe(join(gitDir, 'HEAD'))?.trim();
    if (!head) return undefined;
    if (/^[0-9a-f]{40}$/.test(head)) return head;
    const ref = /^ref: (\S+)$/.exec(head)?.[1];
    if (!ref) return undefined;
    const loose = (readFileSafe(join(gitDir, ref)) ?? readFileSafe(join(common, ref)))?.trim();
    if (loose && /^[0-9a-f]{40}$/.test(loose)) return loose;
    const packed = readFileSafe(join(common, 'packed-refs')) ?? '';
    return packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.slice(0, 40);
  } catch {
    return undefined;
  }
}

function readFileSafe(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
