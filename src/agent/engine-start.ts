// The agent's engine start with the host's hugepage set-up explained: a configured hugepage
// directory outside every hugetlbfs mount is refused before DPDK starts, naming the setting, and a
// DPDK start that fails is followed by what the doctor finds wrong with the host's hugepages.
import { Engine, EngineError, type EngineDeps, type EngineOptions } from '../engine/index.js';
import { hugeDirProblem, hugepageProblems } from '../doctor/index.js';
import { ValidationError } from '../util/errors.js';

/** The setting a user wrote for engine.hugeDir, in either config format. */
const HUGE_DIR_FIELD = 'engine.hugeDir (VIRTIOFWD_HUGETLBFS_MOUNT_POINT, -H)';

/** `root`: where proc/ and sys/ are read (tests point it at a tree of their own). */
export async function startEngine(opts: EngineOptions, deps: EngineDeps, root = '/'): Promise<Engine> {
  if (opts.inMemory !== true) {
    const bad = hugeDirProblem(opts.hugeDir, HUGE_DIR_FIELD, root);
    if (bad) throw new ValidationError(HUGE_DIR_FIELD, bad);
  }
  try {
    return await Engine.start(opts, deps);
  } catch (err) {
    throw explainEngineFailure(err, opts, root);
  }
}

/** An engine start failure with the host's hugepage problems added, when it has any. */
export function explainEngineFailure(err: unknown, opts: Pick<EngineOptions, 'inMemory'>, root = '/'): unknown {
  if (!(err instanceof EngineError) || (err.code !== 'EIO' && err.code !== 'ENOMEM')) return err;
  const problems = hugepageProblems({ root, ...(opts.inMemory !== undefined ? { inMemory: opts.inMemory } : {}) });
  if (problems.length === 0) return err;
  return new EngineError(err.code, `${err.message}; on this host: ${problems.join('; ')}; \`vio4wd doctor\` checks the rest`, { cause: err });
}
