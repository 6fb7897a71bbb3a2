export type {
  ActorContext,
  AnyGenServer,
  BatchItem,
  BatchServer,
  Behaviour,
  BehaviourKind,
  CallOptions,
  CallResult,
  GenServer,
  SpawnOptions,
  StatechartBehaviour,
  TimerRef,
} from './behaviour.ts';
export { fromStatechart } from './behaviour.ts';
export type { Clock } from './clock.ts';
export { flushMicrotasks, ManualClock, systemClock } from './clock.ts';
export { CallTimeoutError, ExitError, NoProcError, StartError } from './errors.ts';
export type { ActorInfo, ActorStatus, InspectionEvent, InspectionListener, NodeTree } from './inspect.ts';
export type { Distribution, Signal } from './internal/signals.ts';
export type { LoopbackOptions } from './loopback.ts';
export { LoopbackNetwork } from './loopback.ts';
export type { NodeOptions } from './node.ts';
export { Node } from './node.ts';
export type {
  ChildInfo,
  ChildSpec,
  RestartType,
  ShutdownSpec,
  StartContext,
  Strategy,
  SupervisorFlags,
} from './supervisor.ts';
export {
  deleteChild,
  restartChild,
  SupervisorError,
  startChild,
  startSupervisor,
  supervisorBehaviour,
  supervisorSpec,
  terminateChild,
  whichChildren,
} from './supervisor.ts';
export type {
  Dest,
  DownMessage,
  ErrorExit,
  ExitMessage,
  ExitReason,
  From,
  MonitorRef,
  NodeMessage,
  RegName,
  SendStatus,
  ShutdownExit,
  SystemMessage,
} from './types.ts';
export { errorReason, formatReason, isCleanExit } from './types.ts';
