import type { ServerId } from '@otra/protocol';

/** Base of every error the raft API rejects with. `code` is stable and machine-readable. */
export class RaftError extends Error {
  override readonly name: string = 'RaftError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The server is not the leader (or could not reach it within the allowed hops); `leader` is its best guess. */
export class NotLeaderError extends RaftError {
  override readonly name = 'NotLeaderError';
  constructor(
    readonly server: ServerId,
    readonly leader: ServerId | null,
  ) {
    super(
      'not_leader',
      `${server.name}@${server.node} is not the leader${leader ? ` (leader: ${leader.name}@${leader.node})` : ''}`,
    );
  }
}

/** No answer within the caller's `timeoutMs`. The command may still be applied later. */
export class TimeoutError extends RaftError {
  override readonly name = 'TimeoutError';
  constructor(
    readonly server: ServerId,
    readonly timeoutMs: number,
  ) {
    super('timeout', `no answer from ${server.name}@${server.node} within ${timeoutMs} ms`);
  }
}

/**
 * The request reached a leader, which then became unreachable (its link dropped or it exited)
 * before answering: the command may or may not have been applied, and it was not resent (a
 * resend could apply it twice). Read back to find out, or make the command idempotent.
 */
export class CommandOutcomeUnknownError extends RaftError {
  override readonly name = 'CommandOutcomeUnknownError';
  constructor(
    readonly server: ServerId,
    readonly reason: string,
  ) {
    super(
      'outcome_unknown',
      `${server.name}@${server.node} became unreachable (${reason}) before answering; the command may or may not have been applied`,
    );
  }
}

/** A membership change is already in progress (uncommitted); retry once it commits. */
export class ClusterChangeNotPermittedError extends RaftError {
  override readonly name = 'ClusterChangeNotPermittedError';
  constructor(readonly leader: ServerId | null) {
    super('cluster_change_not_permitted', 'a cluster change is already in progress');
  }
}

/** No such server is running (or its node is unreachable: `noconnection`). */
export class ServerNotFoundError extends RaftError {
  override readonly name = 'ServerNotFoundError';
  constructor(
    readonly server: ServerId,
    readonly reason: string,
  ) {
    super('noproc', `server ${server.name}@${server.node} is not running (${reason})`);
  }
}

/** Leadership transfer refused: the target is not a voter or has not caught up. */
export class NotUpToDateError extends RaftError {
  override readonly name = 'NotUpToDateError';
  constructor(
    readonly target: ServerId,
    /** `not_up_to_date`: the target lags (worth retrying); `not_voter`: it can never lead. */
    readonly reason: string,
  ) {
    super('not_up_to_date', `cannot transfer leadership to ${target.name}@${target.node}: ${reason}`);
  }
}

/** The machine's `apply` (or a query function) threw; the log is unaffected. */
export class MachineError extends RaftError {
  override readonly name = 'MachineError';
  constructor(detail: string) {
    super('machine_error', detail);
  }
}

/** The request was refused by the server for the reason in `code` (e.g. `not_member`, `already_member`). */
export class RequestRefusedError extends RaftError {
  override readonly name = 'RequestRefusedError';
}

/** Bad input at the API: wrong types, unknown machine module, bad server id. Nothing was sent. */
export class InvalidRequestError extends RaftError {
  override readonly name = 'InvalidRequestError';
  constructor(message: string) {
    super('invalid_request', message);
  }
}
