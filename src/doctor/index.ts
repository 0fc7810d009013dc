// Host checks for vio4wd (`vio4wd doctor`).
export { runDoctor, formatReport, exitStatus, CHECKS } from './doctor.js';
export { hugepagesForRelays, PAGES_FOR_64_RELAYS } from './sizing.js';
export { hugeDirProblem, hugepageProblems, hugetlbfsMounts } from './hugepage-problems.js';
export type { CheckResult, DoctorOptions, DoctorReport, Status } from './types.js';
