import type { ExitReason, From } from '../types.ts';

// Mailbox entries other than plain `send` messages, which are queued as they are (the hot path
// allocates nothing). Classes, so one `instanceof` tells them apart from user messages.

export class CastEnvelope {
  constructor(readonly msg: unknown) {}
}

export class CallEnvelope {
  constructor(
    readonly request: unknown,
    readonly from: From,
  ) {}
}

/**
 * Stop the actor in order (terminate runs): queued by `Node.stop` and by an exit signal from the
 * parent of an actor that traps exits, as OTP's gen_server does.
 */
export class StopEnvelope {
  constructor(readonly reason: ExitReason) {}
}
