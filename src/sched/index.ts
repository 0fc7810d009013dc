// Core scheduling: relays move between worker CPUs by measured load (virtio-forwarder's
// vio4wd_core_scheduler, inside the agent).
export { CORE_SCHED_DEFAULTS, CoreScheduler, type CoreSchedulerOptions, type SchedRelay } from './scheduler.js';
export { DIRECTIONS, directionLoads, plan, rateCost, variation, type Direction, type DirectionLoad, type GroupPlan, type Move, type PlanOptions, type WorkerLoad } from './plan.js';
